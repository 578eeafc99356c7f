-- Issue 14: every index costs every insert, and on deliveries every attempt too (an attempt's
-- update is never HOT: status is in the partial indexes' predicates, so each one writes a new
-- entry into every index of the table). These had no reader:
--
-- BRIN on deliveries.scheduled_at: the claim reads deliveries_pending_webhook_due_idx (migration
-- 3) and the queue gauges its pending rows; nothing ranges over all rows by due time.
DROP INDEX IF EXISTS deliveries_scheduled_at_idx;
-- BRIN on created_at, both tables: the lists' created_at windows are served in order by the
-- (created_at DESC, id DESC) btrees of migration 3, which they need for their ORDER BY anyway.
DROP INDEX IF EXISTS deliveries_created_at_idx;
DROP INDEX IF EXISTS delivery_attempts_created_at_idx;
-- A btree on a boolean: every attempt paid for an entry, and success=true matches most rows,
-- so only success=false lists could use it. Failures alone are indexed now, in the lists' order.
DROP INDEX IF EXISTS delivery_attempts_success_idx;
CREATE INDEX IF NOT EXISTS delivery_attempts_failed_created_at_id_idx
    ON delivery_attempts (created_at DESC, id DESC) WHERE NOT success;

-- An attempt's webhook is its delivery's (the dispatcher writes both from the row it updates in
-- the same statement), and deleting a webhook already reaches its attempts through
-- deliveries (ON DELETE CASCADE on delivery_attempts.delivery_id). Checking this second key
-- locked the webhook's row (FOR KEY SHARE) on every attempt: a WAL record each, and a
-- multixact whenever two dispatchers recorded for the same webhook at once.
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_webhook_id_fkey;
-- No cascade needs webhook_id alone any more; a list by webhook reads it in the list's order.
DROP INDEX IF EXISTS delivery_attempts_webhook_id_idx;
CREATE INDEX IF NOT EXISTS delivery_attempts_webhook_created_at_id_idx
    ON delivery_attempts (webhook_id, created_at DESC, id DESC);

-- Room on each page for the attempts' updates: a new row version on the same page is logged
-- as the bytes that changed, not the whole row with its payload. Pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 80);
