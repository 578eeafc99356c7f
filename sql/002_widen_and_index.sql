-- postmand (Rust) additions on top of the original schema. Nothing is dropped or renamed, so
-- clients of the original schema keep working.

-- SMALLINT overflowed at 32767 (a 33 s response made the attempt row unstorable and the delivery
-- loop forever: behaviour spec 4.7). INTEGER everywhere a number is stored.
ALTER TABLE webhooks
    ALTER COLUMN valid_status_codes TYPE INTEGER[],
    ALTER COLUMN max_delivery_attempts TYPE INTEGER,
    ALTER COLUMN delivery_attempt_timeout TYPE INTEGER,
    ALTER COLUMN retry_min_backoff TYPE INTEGER,
    ALTER COLUMN retry_max_backoff TYPE INTEGER;
ALTER TABLE deliveries
    ALTER COLUMN delivery_attempts TYPE INTEGER;
ALTER TABLE delivery_attempts
    ALTER COLUMN response_status_code TYPE INTEGER,
    ALTER COLUMN execution_duration TYPE INTEGER;

-- The three delivery states are the only ones any code path writes (model::DeliveryStatus).
ALTER TABLE deliveries
    ADD CONSTRAINT deliveries_status_check CHECK (status IN ('pending', 'succeeded', 'failed'));

-- Lists page by (created_at DESC, id DESC) and webhooks by (name, id): btree indexes that serve
-- both the order and the tie-breaker (the original's BRIN indexes serve neither).
CREATE INDEX IF NOT EXISTS deliveries_created_at_id_idx ON deliveries (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS delivery_attempts_created_at_id_idx
    ON delivery_attempts (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS webhooks_name_id_idx ON webhooks (name, id);
