-- Issue 15: events fanned out to subscribed webhooks, and idempotency keys on creates.

-- The event types a webhook subscribes to; empty means every type (Svix's filterTypes).
-- A constant default is stored in the catalogue, so this does not rewrite the table.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS event_types varchar(128)[] NOT NULL DEFAULT '{}';

-- One row per POST /v1/events. `deliveries` is how many deliveries it made when created (the
-- fan-out is decided once, in the create's statement); it never changes.
CREATE TABLE IF NOT EXISTS events (
    id uuid PRIMARY KEY,
    event_type varchar(128) NOT NULL,
    payload text NOT NULL,
    deliveries integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The list, newest first, with or without an event_type filter.
CREATE INDEX IF NOT EXISTS events_created_at_id_idx ON events (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_event_type_created_at_id_idx
    ON events (event_type, created_at DESC, id DESC);

-- The event a delivery was made for; NULL for a delivery created directly. NOT VALID: every
-- existing row is NULL, and validating would scan the whole table under this migration's lock.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS event_id uuid;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deliveries_event_id_fkey') THEN
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_id_fkey
            FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE SET NULL NOT VALID;
    END IF;
END $$;
-- GET /v1/deliveries?event_id= and GET /v1/events/{id}; direct deliveries pay nothing for it.
CREATE INDEX IF NOT EXISTS deliveries_event_id_created_at_id_idx
    ON deliveries (event_id, created_at DESC, id DESC) WHERE event_id IS NOT NULL;

-- The first answer to each Idempotency-Key, per endpoint (`scope`), written in the create's own
-- transaction. `request_hash` is SHA-256 of the request's fields; a repeat with another hash is
-- refused. Rows older than POSTMAND_IDEMPOTENCY_HOURS are ignored and then deleted.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope varchar(16) NOT NULL,
    key varchar(255) NOT NULL,
    request_hash bytea NOT NULL,
    response_status integer NOT NULL,
    response_body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);
