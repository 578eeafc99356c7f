-- The original's btree on deliveries(status) misleads the planner whenever its statistics lag
-- the queue (after a drain they say "no pending rows"; then a burst arrives): it then reads the
-- whole queue through this index and sorts it on every claim. Measured: 3 s per claim with
-- 20,000 pending rows, until autovacuum re-analysed the table. Every query that filters by
-- status is served by the partial indexes of migrations 2-4 instead. Nothing else refers to it.
DROP INDEX IF EXISTS deliveries_status_idx;

-- The same holds for an index of pending rows by due time alone: with stale statistics the
-- planner walked it through every pending row of every webhook (62,000 rows, 600 ms a claim)
-- instead of the per-webhook index of migration 3. Development databases of this release had
-- it; nothing needs it.
DROP INDEX IF EXISTS deliveries_pending_due_idx;

-- The queue churns (every attempt updates a row), so keep its statistics and visibility fresh.
ALTER TABLE deliveries SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
