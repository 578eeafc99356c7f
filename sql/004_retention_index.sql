-- Retention deletes finished deliveries by age in small batches; this index finds the oldest
-- ones without reading the queue or the whole table.
CREATE INDEX IF NOT EXISTS deliveries_finished_updated_at_idx
    ON deliveries (updated_at) WHERE status IN ('succeeded', 'failed');
