"""Web-shop connector speaking Shopify's Admin API shape: pushes channel availability with
compare-and-set, and turns ``orders/create`` / ``orders/cancelled`` webhooks into orders."""
