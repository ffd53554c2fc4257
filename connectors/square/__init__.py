"""Square (POS) connector: polls Square's Inventory API for counts and adjustments, receives
``inventory.count.updated`` webhooks, and reads Square's counts for the drift check."""
