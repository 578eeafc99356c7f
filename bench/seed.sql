-- The database of the benchmarks that need history: scripts/bench-ui.sh (the dashboard, with
-- 2,000,000 deliveries across 50 webhooks) and the scale figure of scripts/bench.sh
-- (bench/scale.rs, --rows across 200 webhooks). psql variables: :rows deliveries across
-- :webhooks webhooks (one in ten inactive), created in time order over the last :days days, so
-- a busy day of a busy service (2,000,000 over 7 days is 12,000 attempts an hour) is in the 24 h
-- windows the pages read. 90% succeeded with one attempt, 10% failed with three (their webhooks
-- spread so that some have no failed delivery at all), the newest :pending of those pending
-- instead; every fifth delivery belongs to an event of ten (one event per 50 deliveries);
-- payloads and dumps of a couple of hundred bytes; two webhooks in webhook_failures.
-- bench/scale.rs substitutes the variables as psql does, runs the file as one transaction and
-- then VACUUM ANALYZE; bench-ui.sh runs it with psql and vacuums after it.
--
-- Seeding is quickest with the secondary indexes built once at the end (in parallel, from
-- sorted input) rather than kept up row by row: their definitions are saved, the indexes
-- dropped and made again from those definitions, so the file follows whatever indexes the
-- migrations made. Foreign keys are not checked (session_replication_role = replica, which
-- needs a superuser): every row refers to one made here. 2,000,000 rows took 2m05s with the
-- indexes and the checks kept.
SET synchronous_commit = off;
SET work_mem = '64MB';
SET maintenance_work_mem = '512MB';
SET session_replication_role = replica;

-- A partition of delivery_attempts for each seeded day (migration 10) that does not exist yet.
SELECT postmand_create_attempt_partitions(now() - (:days + 1) * interval '1 day', now() + interval '1 day');

CREATE TEMP TABLE seed_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid IN ('deliveries'::regclass, 'delivery_attempts'::regclass, 'events'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
DO $$
DECLARE index record;
BEGIN
  FOR index IN SELECT name FROM seed_indexes LOOP
    EXECUTE 'DROP INDEX ' || index.name;
  END LOOP;
END $$;

INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active,
  max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(w), 12, '0'))::uuid, 'bench webhook ' || w,
  'https://receiver-' || w || '.example/hooks?token=x', 'application/json', '{200}', 'secret', w % 10 <> 0,
  5, 5, 10, 600, now() - interval '40 days', now() - interval '40 days'
FROM generate_series(1, :webhooks) AS w;

INSERT INTO events (id, event_type, payload, deliveries, created_at)
SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(e), 12, '0'))::uuid, 'bench.order',
  '{"order": ' || e || ', "items": [1, 2, 3]}', 10,
  now() - (:rows - (50 * (e - 1) + 1)) * (:days * interval '1 day' / :rows)
FROM generate_series(1, (:rows + 49) / 50) AS e;

-- No ORDER BY: generate_series yields i in order and t rises with i, so the rows go in in
-- time order without a sort of the whole set.
INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at, event_id)
SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(to_hex(1 + (i::bigint * 7919) % :webhooks), 12, '0'))::uuid,
  '{"order": ' || i || ', "customer": "c-' || (i % 1000) || '", "items": [1, 2, 3], "note": "a payload of a couple of hundred bytes, as a small internal team sends"}',
  CASE WHEN i % 20 = 1 THEN now() + interval '10 minutes' - (i % 7) * interval '5 minutes' ELSE t END,
  CASE WHEN i % 20 = 1 AND i > :rows - 20 * :pending THEN 0 WHEN i % 20 IN (0, 1) THEN 3 ELSE 1 END,
  CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 20 = 1 AND i > :rows - 20 * :pending THEN 'pending' WHEN i % 20 = 1 THEN 'failed' ELSE 'succeeded' END,
  t, t,
  CASE WHEN i % 5 = 0 THEN ('00000000-0000-4000-9000-' || lpad(to_hex((i - 1) / 50 + 1), 12, '0'))::uuid END
FROM (SELECT i, now() - (:rows - i) * (:days * interval '1 day' / :rows) AS t FROM generate_series(1, :rows) AS i) s;

-- No ORDER BY either: a sequential scan of the fresh deliveries returns them in time order.
INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, response_status_code,
  execution_duration, success, error, created_at)
SELECT gen_random_uuid(), d.webhook_id, d.id,
  'POST /hooks HTTP/1.1' || E'\r\n' || 'content-type: application/json' || E'\r\n' || 'user-agent: postmand/0.1.0' || E'\r\n\r\n' || d.payload,
  CASE WHEN k = 1 AND d.status = 'succeeded' THEN 'HTTP/1.1 200 OK' || E'\r\n' || 'content-length: 2' || E'\r\n\r\nok' ELSE 'HTTP/1.1 503 Service Unavailable' || E'\r\n\r\n' END,
  CASE WHEN k = 1 AND d.status = 'succeeded' THEN 200 ELSE 503 END, 20 + (k * 13) % 200,
  k = 1 AND d.status = 'succeeded', '', d.created_at + (k - 1) * interval '10 seconds'
FROM deliveries d CROSS JOIN LATERAL generate_series(1, CASE WHEN d.status = 'failed' THEN 3 WHEN d.status = 'pending' THEN 0 ELSE 1 END) AS k;

INSERT INTO webhook_failures (webhook_id, failing_since, failures)
SELECT id, now() - interval '3 hours', 42 FROM webhooks WHERE name IN ('bench webhook 7', 'bench webhook 13');

-- An index of a partitioned table is defined ON ONLY the parent; made again without ONLY, it
-- is made on every partition too.
DO $$
DECLARE index record;
BEGIN
  FOR index IN SELECT def FROM seed_indexes LOOP
    EXECUTE replace(index.def, ' ON ONLY ', ' ON ');
  END LOOP;
END $$;
DROP TABLE seed_indexes;
RESET session_replication_role;
