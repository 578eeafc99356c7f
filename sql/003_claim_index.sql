-- The claim walks active webhooks and, for each, its earliest due pending deliveries. This index
-- serves that walk, so deliveries waiting on an inactive or saturated webhook cost the claim
-- nothing however many there are.
CREATE INDEX IF NOT EXISTS deliveries_pending_webhook_due_idx
    ON deliveries (webhook_id, scheduled_at, id) WHERE status = 'pending';
