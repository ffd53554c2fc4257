"""The row-lock peer: reservations on PostgreSQL with ``SELECT ... FOR UPDATE``.

How Saleor and most shops allocate stock: one transaction locks the stock rows (in id order, so
two carts never deadlock), checks what is left, raises ``allocated``, inserts the reservation
and commits. Same endpoints and payloads as stocksync for what the scenarios use, so one load
generator drives both. It is a measuring stick, not a strawman: a connection pool per worker,
the indexes the queries need, prepared statements, default durability (``synchronous_commit``).
"""
