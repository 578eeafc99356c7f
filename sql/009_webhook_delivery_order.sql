-- Issue 18 (the dashboard): a webhook's deliveries, newest first, straight from an index.
--
-- The webhook page lists one webhook's deliveries by creation time, filtered by status and
-- time, with the API's statement (GET /v1/deliveries?webhook_id=...). With only an index on
-- webhook_id, that meant either every delivery of the webhook sorted, or the creation-time
-- index of all deliveries walked until enough of this webhook's came by: on 2M deliveries,
-- "this webhook's failed deliveries" read the whole index (1.3 s) when it had none.
--
-- This index replaces deliveries_webhook_id_idx, so a write maintains as many indexes as
-- before: webhook_id leads it, and deleting a webhook cascades through it as before.
CREATE INDEX IF NOT EXISTS deliveries_webhook_created_at_id_idx
    ON deliveries (webhook_id, created_at DESC, id DESC);
DROP INDEX IF EXISTS deliveries_webhook_id_idx;

-- Failed deliveries of a webhook, newest first: the status filter of the webhook page and
-- POST /v1/webhooks/{id}/recover (which walked the webhook's every delivery to find them).
-- Only failed rows are in it, so only a delivery's last, failing attempt writes to it.
CREATE INDEX IF NOT EXISTS deliveries_failed_webhook_created_at_id_idx
    ON deliveries (webhook_id, created_at DESC, id DESC) WHERE status = 'failed';
