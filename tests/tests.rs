//! The integration suite: one binary, one set of helpers. Every test gets its own database cloned
//! from a migrated template and talks to the real service over real HTTP on 127.0.0.1.

// Helpers: databases per test, the in-process service, a raw HTTP client, fixtures, wait_until.
mod common;

// TLS to PostgreSQL: every sslmode against a server that takes TLS only, and start-up errors.
mod database_tls;

// /v1/webhooks: create, read, replace, delete, validation messages, filters and paging.
mod api_webhooks;

// /v1/deliveries: create, read, delete, retry, validation, filters and paging.
mod api_deliveries;

// Issue 15: event subscriptions on webhooks, /v1/events fan-out, event_id and X-Postmand-Event.
mod events;

// Issue 15: Idempotency-Key on both creates: replay, mismatch, races, scope, expiry.
mod idempotency;

// Issue 16: 410 Gone, Retry-After, auto-disable, the operational webhook, secret rotation, recover.
mod failing_endpoints;

// /v1/delivery-attempts: read and list (rows arranged in SQL, as the dispatcher writes them).
mod api_attempts;

// What every route shares: 404/405 routing, 415, 413, headers, 503 without a database, health.
mod api_protocol;

// Issue 14: every index of deliveries and attempts is read by some statement's plan.
mod plans;

// Issue 17: delivery_attempts partitioned by day: the migration, partitions ahead, retention by
// partition, lookups by id.
mod partitions;

// Issue 17: every list with each filter combination, a cursor and a deep offset, on 1M rows:
// read in order from an index, never a whole table or a large sort.
mod list_plans;

// Issue 17: cursor paging on every list: walks under concurrent inserts, next_cursor, errors.
mod api_cursors;

// Issue 18: the dashboard at /ui/: escaping, headers, login, CSRF, actions, 404 pages.
mod ui;

// Issue 18: no statement of a dashboard page reads a whole table of deliveries or attempts.
mod ui_plans;

// The binary: migrate (twice, over an original-schema database), --help, --version, start-up
// errors, SIGTERM.
mod binary;

// The dispatcher in-process: outcomes, attempt records, signatures, backoff, isolation,
// hostile responses, wake-ups and the claim's plan.
mod dispatch;

// Outbound trust and network policy: https endpoints behind a private CA with and without
// POSTMAND_CA_FILE, POSTMAND_ENDPOINT_DENY judged after DNS, their configuration errors.
mod endpoint_tls;

// The real binary as worker processes: four processes sharing a queue, SIGKILL and SIGTERM
// mid-attempt, the dispatcher's connection dropped mid-attempt.
mod dispatch_processes;

// Running it: metrics, the API token, retention, OpenAPI and Swagger UI.
mod operations;

// Database faults: restarts (on private clusters) under load and under a worker, refused connections.
mod faults_database;

// Issue 17: lists on a read replica (a real streaming standby): lag, by-id reads on the primary,
// fallback and /healthz while the replica is down.
mod replica;

// Hostile clients, fuzzed: generated requests on every route get no 5xx, and 4xx error objects.
mod faults_fuzz;

// Hostile clients, slow: dripped heads, unfinished bodies, an Upgrade body left open.
mod faults_slow_clients;

// Hostile clients, oversized: huge heads, 50 MiB and endless bodies, Content-Length near usize::MAX.
mod faults_oversized;

// Hostile receivers: early closes, endless headers, slow drips, invalid status lines; one attempt each.
mod faults_receivers;

// Nothing waits on what it does not need: claims behind dead endpoints, creates behind a
// delete, a panicking writer, slow batches, dispatcher sessions in the pool, Ctrl-C on run.sh.
mod contention;

// Servers that never stop listening: idle ports, absurd lengths, fd exhaustion, readiness,
// the connection cap, crowds of idle connections.
mod servers;

// Process faults under load: workers killed again and again, three workers beside two APIs.
mod faults_processes;

// scripts/receiver.py, the README tour's offline receiver: it checks the signatures postmand sends.
mod receiver_script;
