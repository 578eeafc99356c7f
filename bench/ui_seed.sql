-- The dashboard benchmark's database (scripts/bench-ui.sh): 2,000,000 deliveries across 50
-- webhooks (5 of them inactive), created in time order over the last :days days, so a busy
-- day of a busy service (at 7 days, 12,000 attempts an hour) is in the 24 h windows the pages
-- read. 90% succeeded with one attempt, 10% failed with three (their webhooks spread so that
-- some have no failed delivery at all), the newest 1,000 of those pending instead; payloads
-- and dumps of a couple of hundred bytes; two webhooks in webhook_failures.
INSERT INTO webhooks (id, name, url, content_type, valid_status_codes, secret_token, active,
  max_delivery_attempts, delivery_attempt_timeout, retry_min_backoff, retry_max_backoff, created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(w), 12, '0'))::uuid, 'bench webhook ' || w,
  'https://receiver-' || w || '.example/hooks?token=x', 'application/json', '{200}', 'secret', w % 10 <> 0,
  5, 5, 10, 600, now() - interval '40 days', now() - interval '40 days'
FROM generate_series(1, 50) AS w;

INSERT INTO deliveries (id, webhook_id, payload, scheduled_at, delivery_attempts, status, created_at, updated_at)
SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(to_hex(1 + (i::bigint * 7919) % 50), 12, '0'))::uuid,
  '{"order": ' || i || ', "customer": "c-' || (i % 1000) || '", "items": [1, 2, 3], "note": "a payload of a couple of hundred bytes, as a small internal team sends"}',
  CASE WHEN i % 20 = 1 THEN now() + interval '10 minutes' - (i % 7) * interval '5 minutes' ELSE t END,
  CASE WHEN i % 20 = 1 AND i > 1980000 THEN 0 WHEN i % 20 IN (0, 1) THEN 3 ELSE 1 END,
  CASE WHEN i % 20 = 0 THEN 'failed' WHEN i % 20 = 1 AND i > 1980000 THEN 'pending' WHEN i % 20 = 1 THEN 'failed' ELSE 'succeeded' END,
  t, t
FROM (SELECT i, now() - (2000000 - i) * (:days * interval '1 day' / 2000000) AS t FROM generate_series(1, 2000000) AS i) s
ORDER BY 7;

INSERT INTO delivery_attempts (id, webhook_id, delivery_id, raw_request, raw_response, response_status_code,
  execution_duration, success, error, created_at)
SELECT gen_random_uuid(), d.webhook_id, d.id,
  'POST /hooks HTTP/1.1' || E'\r\n' || 'content-type: application/json' || E'\r\n' || 'user-agent: postmand/0.1.0' || E'\r\n\r\n' || d.payload,
  CASE WHEN k = 1 AND d.status = 'succeeded' THEN 'HTTP/1.1 200 OK' || E'\r\n' || 'content-length: 2' || E'\r\n\r\nok' ELSE 'HTTP/1.1 503 Service Unavailable' || E'\r\n\r\n' END,
  CASE WHEN k = 1 AND d.status = 'succeeded' THEN 200 ELSE 503 END, 20 + (k * 13) % 200,
  k = 1 AND d.status = 'succeeded', '', d.created_at + (k - 1) * interval '10 seconds'
FROM deliveries d CROSS JOIN LATERAL generate_series(1, CASE WHEN d.status = 'failed' THEN 3 WHEN d.status = 'pending' THEN 0 ELSE 1 END) AS k
ORDER BY d.created_at;

INSERT INTO webhook_failures (webhook_id, failing_since, failures)
SELECT id, now() - interval '3 hours', 42 FROM webhooks WHERE name IN ('bench webhook 7', 'bench webhook 13');
VACUUM ANALYZE;
