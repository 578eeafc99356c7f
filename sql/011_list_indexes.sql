-- Issue 17: every filter of the lists served in the lists' order by an index, so a page (and a
-- page after a cursor, whose (created_at, id) row comparison is an index condition) costs the
-- same with 1M rows as with 1,000 (tests/list_plans.rs checks every filter combination).
--
-- Every index costs every write (issue 14), so only rare states get a new one, and each is
-- partial: a row enters it only when it reaches that state. The lists' other filters were
-- already served: webhook_id, event_id and the created_at windows by the (…, created_at DESC,
-- id DESC) indexes of migrations 2, 6, 7 and 9; succeeded deliveries and successful attempts,
-- the common case, by those indexes with a filter that keeps most rows it reads; pending
-- deliveries by deliveries_pending_webhook_due_idx (migration 3) and a sort of the pending set,
-- which is the queue and stays small (an index of pending rows by creation time would cost
-- every delivery an entry on insert, and stale statistics made such indexes mislead the claim:
-- migration 5); one delivery's attempts by delivery_attempts_delivery_id_idx and a sort of its
-- few rows.

-- GET /v1/deliveries?status=failed without webhook_id: it read deliveries_created_at_id_idx and
-- threw away every row that was not failed (all of them, when nothing failed). Only a delivery's
-- last, failing attempt writes here; a retry's update leaves a dead entry for vacuum, as in
-- deliveries_failed_webhook_created_at_id_idx.
CREATE INDEX IF NOT EXISTS deliveries_failed_created_at_id_idx
    ON deliveries (created_at DESC, id DESC) WHERE status = 'failed';

-- GET /v1/delivery-attempts?webhook_id=…&success=false: a webhook's failed attempts read its
-- every attempt through delivery_attempts_webhook_created_at_id_idx. Only failed attempts
-- write here (attempts are never updated). On a table partitioned by created_at it is created
-- on every partition.
CREATE INDEX IF NOT EXISTS delivery_attempts_failed_webhook_created_at_id_idx
    ON delivery_attempts (webhook_id, created_at DESC, id DESC) WHERE NOT success;
