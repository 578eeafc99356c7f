-- Issue 16: POST /v1/webhooks/{id}/recover walks one webhook's failed deliveries by creation
-- time. Failed rows only: a delivery pays for it once, when it fails for good.
CREATE INDEX IF NOT EXISTS deliveries_failed_webhook_created_at_id_idx
    ON deliveries (webhook_id, created_at, id) WHERE status = 'failed';
