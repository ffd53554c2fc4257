"""The signed change feed: subscriptions, messages built from the outbox, signed delivery.

``subscriptions`` holds what a channel system asked for and the durable queue (SQL);
``messages`` turns a batch of outbox events into webhook messages (coalesced); ``signing`` is the
Standard Webhooks signature; ``targets`` refuses URLs that point inside the network (SSRF);
``delivery`` sends with retries; ``worker`` ties them to the outbox streams.
"""
