-- The row-lock peer's tables (Saleor's Stock and Allocation, reduced to what a hold needs).
CREATE TABLE stock (
    id bigserial PRIMARY KEY,
    sku text NOT NULL,
    location_id text NOT NULL,
    on_hand integer NOT NULL,
    allocated integer NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    UNIQUE (sku, location_id)  -- also the index of availability reads (sku first)
);

CREATE TABLE reservation (
    reservation_id text PRIMARY KEY,  -- the idempotency key
    channel text NOT NULL,
    state text NOT NULL,
    fingerprint text NOT NULL,  -- the request, to tell a retry from a conflicting reuse
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE reservation_line (
    reservation_id text NOT NULL REFERENCES reservation ON DELETE CASCADE,
    stock_id bigint NOT NULL REFERENCES stock,
    qty integer NOT NULL CHECK (qty > 0),
    PRIMARY KEY (reservation_id, stock_id)
);
CREATE INDEX reservation_line_stock ON reservation_line (stock_id);
