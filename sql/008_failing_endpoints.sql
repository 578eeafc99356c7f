-- Issue 16: endpoints that fail, move or rotate.

-- Why and when postmand deactivated a webhook (410 Gone, or only failures for too long); both
-- NULL for a webhook it never disabled. A PUT with active=true clears them.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS disabled_reason text;
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS disabled_at timestamptz;

-- After POST /v1/webhooks/{id}/rotate-secret: the secret it replaced, which still signs (beside
-- the new one) until previous_secret_expires_at.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS previous_secret_token varchar(1024);
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS previous_secret_expires_at timestamptz;

-- The failure clock of a webhook whose latest attempts all failed: since when, and how many.
-- A row exists only while a webhook is failing (a success deletes it), so healthy webhooks cost
-- nothing, and the worker never scans delivery_attempts to decide. It is its own table, not
-- columns of webhooks, so recording an attempt never writes the webhook's row.
CREATE TABLE IF NOT EXISTS webhook_failures (
    webhook_id uuid PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    failing_since timestamptz NOT NULL,
    failures integer NOT NULL
);
