//! Process metrics: atomic counters and a histogram, rendered in the Prometheus text format at
//! `GET :8001/metrics`. Counting costs one atomic add (or one short lock for the per-route
//! table); nothing here touches the database. Queue gauges are read by `health.rs` from the
//! database (through the partial index of pending rows, never a full-table count) and passed to
//! [`Metrics::render`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the attempt-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How an attempt ended, for `postmand_attempts_total{outcome}`: by its response's status, or
/// by how it failed on the wire (one outcome per `dispatch::send::TransportError` variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A valid status code.
    Success,
    /// A response with another status code.
    Rejected,
    /// The timeout expired before the response headers arrived.
    Timeout,
    /// No connection could be made (refused, or the host unreachable).
    Refused,
    /// The TLS handshake or stream failed.
    Tls,
    /// The host name did not resolve.
    Dns,
    /// The response headers were too large.
    TooLarge,
    /// A malformed response, or any other failure on the wire.
    Protocol,
    /// The response body could not be read.
    Body,
    /// Every address of the endpoint's host is in `POSTMAND_ENDPOINT_DENY`; nothing was sent.
    Denied,
}

impl AttemptOutcome {
    /// Every outcome, in the order they are rendered.
    pub const ALL: [AttemptOutcome; 10] = [
        AttemptOutcome::Success,
        AttemptOutcome::Rejected,
        AttemptOutcome::Timeout,
        AttemptOutcome::Refused,
        AttemptOutcome::Tls,
        AttemptOutcome::Dns,
        AttemptOutcome::TooLarge,
        AttemptOutcome::Protocol,
        AttemptOutcome::Body,
        AttemptOutcome::Denied,
    ];

    /// The value of the `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Rejected => "rejected",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Tls => "tls",
            AttemptOutcome::Dns => "dns",
            AttemptOutcome::TooLarge => "too_large",
            AttemptOutcome::Protocol => "protocol",
            AttemptOutcome::Body => "body",
            AttemptOutcome::Denied => "denied",
        }
    }
}

/// Where a delivery went after an attempt, for `postmand_deliveries_finished_total{status}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Succeeded.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Pending again, scheduled for a retry.
    Retrying,
}

/// Why postmand deactivated a webhook, for `postmand_webhooks_disabled_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableCause {
    /// The endpoint answered 410 Gone.
    Gone,
    /// Its attempts all failed for `POSTMAND_DISABLE_AFTER_HOURS`.
    Failing,
}

pub use crate::store::queue::QueueStats;

/// Every metric of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    deliveries_created: AtomicU64,
    /// Indexed by `AttemptOutcome as usize` (the order of [`AttemptOutcome::ALL`]).
    attempts: [AtomicU64; AttemptOutcome::ALL.len()],
    finished_succeeded: AtomicU64,
    finished_failed: AtomicU64,
    retries_scheduled: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    dispatchers: AtomicU64,
    dispatchers_busy: AtomicU64,
    retention_deleted: AtomicU64,
    /// Indexed by `DisableCause as usize`.
    webhooks_disabled: [AtomicU64; 2],
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    /// A delivery was queued through the API.
    pub fn delivery_created(&self) {
        self.deliveries_created.fetch_add(1, Ordering::Relaxed);
    }

    /// An event was committed, with `deliveries` deliveries.
    pub fn event_created(&self, deliveries: u64) {
        self.deliveries_created
            .fetch_add(deliveries, Ordering::Relaxed);
    }

    /// An attempt was committed.
    pub fn attempt(&self, outcome: AttemptOutcome, transition: Transition, duration: Duration) {
        self.attempts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let counter = match transition {
            Transition::Succeeded => &self.finished_succeeded,
            Transition::Failed => &self.finished_failed,
            Transition::Retrying => &self.retries_scheduled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let secs = duration.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    /// The number of dispatcher threads of this process.
    pub fn set_dispatchers(&self, n: usize) {
        self.dispatchers.store(n as u64, Ordering::Relaxed);
    }

    /// A dispatcher started (true) or finished (false) an attempt.
    pub fn dispatcher_busy(&self, busy: bool) {
        if busy {
            self.dispatchers_busy.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dispatchers_busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Retention deleted `n` finished deliveries.
    pub fn retention_deleted(&self, n: u64) {
        self.retention_deleted.fetch_add(n, Ordering::Relaxed);
    }

    /// A worker deactivated a webhook.
    pub fn webhook_disabled(&self, cause: DisableCause) {
        self.webhooks_disabled[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An API request was answered.
    pub fn request(&self, route: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((route, status)).or_insert(0) += 1;
    }

    /// The Prometheus text exposition of every metric; `queue` is absent when the database did
    /// not answer (then `postmand_database_up` is 0). `parts` are the process's parts (see
    /// `liveness`) with whether each is whole.
    pub fn render(&self, queue: Option<QueueStats>, parts: &[(&str, bool)]) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            &mut out,
            "postmand_part_up",
            "gauge",
            "Whether every thread of a part of the process runs (1) or one is missing (0); /healthz is 503 while any is 0.",
        );
        for (part, up) in parts {
            sample(
                &mut out,
                "postmand_part_up",
                &format!("part=\"{part}\""),
                f64::from(u8::from(*up)),
            );
        }
        family(
            &mut out,
            "postmand_database_up",
            "gauge",
            "Whether the last scrape reached the database.",
        );
        sample(
            &mut out,
            "postmand_database_up",
            "",
            queue.is_some() as u64 as f64,
        );
        if let Some(queue) = queue {
            family(
                &mut out,
                "postmand_deliveries_pending",
                "gauge",
                "Pending deliveries, due or scheduled later.",
            );
            sample(
                &mut out,
                "postmand_deliveries_pending",
                "",
                queue.pending as f64,
            );
            family(
                &mut out,
                "postmand_queue_depth",
                "gauge",
                "Pending deliveries due now.",
            );
            sample(&mut out, "postmand_queue_depth", "", queue.due as f64);
            family(
                &mut out,
                "postmand_queue_oldest_due_age_seconds",
                "gauge",
                "How long the oldest due delivery has been waiting.",
            );
            sample(
                &mut out,
                "postmand_queue_oldest_due_age_seconds",
                "",
                queue.oldest_due_age_secs,
            );
            family(
                &mut out,
                "postmand_attempt_partitions_ahead_seconds",
                "gauge",
                "Seconds until the last partition of delivery_attempts ends; workers keep about a week. Alert well before 0.",
            );
            sample(
                &mut out,
                "postmand_attempt_partitions_ahead_seconds",
                "",
                queue.partitions_ahead_secs,
            );
            family(
                &mut out,
                "postmand_deliveries_rows_estimate",
                "gauge",
                "Planner estimate of all delivery rows.",
            );
            sample(
                &mut out,
                "postmand_deliveries_rows_estimate",
                "",
                queue.deliveries_estimate as f64,
            );
        }
        family(
            &mut out,
            "postmand_deliveries_created_total",
            "counter",
            "Deliveries queued through this process's API.",
        );
        sample(
            &mut out,
            "postmand_deliveries_created_total",
            "",
            get(&self.deliveries_created) as f64,
        );
        family(
            &mut out,
            "postmand_deliveries_finished_total",
            "counter",
            "Deliveries this process moved to a final status, or back to pending for a retry.",
        );
        for (status, counter) in [
            ("succeeded", &self.finished_succeeded),
            ("failed", &self.finished_failed),
            ("retrying", &self.retries_scheduled),
        ] {
            sample(
                &mut out,
                "postmand_deliveries_finished_total",
                &format!("status=\"{status}\""),
                get(counter) as f64,
            );
        }
        family(
            &mut out,
            "postmand_attempts_total",
            "counter",
            "Delivery attempts by outcome: success (valid status), rejected (other status), or how it failed on the wire: timeout, refused, tls, dns, too_large (response headers), protocol (malformed response or other), body (reading the body failed).",
        );
        for outcome in AttemptOutcome::ALL {
            sample(
                &mut out,
                "postmand_attempts_total",
                &format!("outcome=\"{}\"", outcome.label()),
                get(&self.attempts[outcome as usize]) as f64,
            );
        }
        family(
            &mut out,
            "postmand_attempt_duration_seconds",
            "histogram",
            "Time from sending an attempt to its response headers (or failure).",
        );
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            sample(
                &mut out,
                "postmand_attempt_duration_seconds_bucket",
                &format!("le=\"{bound}\""),
                get(bucket) as f64,
            );
        }
        let count = get(&self.duration_count) as f64;
        sample(
            &mut out,
            "postmand_attempt_duration_seconds_bucket",
            "le=\"+Inf\"",
            count,
        );
        sample(
            &mut out,
            "postmand_attempt_duration_seconds_sum",
            "",
            get(&self.duration_sum_micros) as f64 / 1e6,
        );
        sample(
            &mut out,
            "postmand_attempt_duration_seconds_count",
            "",
            count,
        );
        family(
            &mut out,
            "postmand_dispatchers",
            "gauge",
            "Dispatcher threads of this process.",
        );
        sample(
            &mut out,
            "postmand_dispatchers",
            "",
            get(&self.dispatchers) as f64,
        );
        family(
            &mut out,
            "postmand_dispatchers_busy",
            "gauge",
            "Dispatchers attempting a delivery right now.",
        );
        sample(
            &mut out,
            "postmand_dispatchers_busy",
            "",
            get(&self.dispatchers_busy) as f64,
        );
        family(
            &mut out,
            "postmand_retention_deleted_total",
            "counter",
            "Finished deliveries deleted by retention.",
        );
        sample(
            &mut out,
            "postmand_retention_deleted_total",
            "",
            get(&self.retention_deleted) as f64,
        );
        family(
            &mut out,
            "postmand_webhooks_disabled_total",
            "counter",
            "Webhooks this process deactivated, by reason: gone (410) or failing.",
        );
        for (cause, label) in [
            (DisableCause::Gone, "gone"),
            (DisableCause::Failing, "failing"),
        ] {
            sample(
                &mut out,
                "postmand_webhooks_disabled_total",
                &format!("reason=\"{label}\""),
                get(&self.webhooks_disabled[cause as usize]) as f64,
            );
        }
        family(
            &mut out,
            "postmand_http_requests_total",
            "counter",
            "API requests by route and status code.",
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((route, code), n) in requests.iter() {
            sample(
                &mut out,
                "postmand_http_requests_total",
                &format!("route=\"{route}\",code=\"{code}\""),
                *n as f64,
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.attempt(
            AttemptOutcome::Success,
            Transition::Succeeded,
            Duration::from_millis(7),
        );
        metrics.attempt(
            AttemptOutcome::Timeout,
            Transition::Retrying,
            Duration::from_secs(3),
        );
        let text = metrics.render(None, &[]);
        assert!(text.contains("postmand_attempt_duration_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("postmand_attempt_duration_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("postmand_attempt_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("postmand_attempt_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("postmand_attempts_total{outcome=\"success\"} 1\n"));
        assert!(text.contains("postmand_attempts_total{outcome=\"timeout\"} 1\n"));
        assert!(text.contains("postmand_attempts_total{outcome=\"rejected\"} 0\n"));
        assert!(text.contains("postmand_deliveries_finished_total{status=\"retrying\"} 1\n"));
        assert!(text.contains("postmand_database_up 0\n"));
    }

    #[test]
    fn every_outcome_has_its_own_series() {
        let metrics = Metrics::default();
        for (n, outcome) in AttemptOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, n, "ALL is in declaration order");
            for _ in 0..=n {
                metrics.attempt(outcome, Transition::Failed, Duration::ZERO);
            }
        }
        let text = metrics.render(None, &[]);
        let series: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("postmand_attempts_total{"))
            .collect();
        assert_eq!(
            series,
            [
                "postmand_attempts_total{outcome=\"success\"} 1",
                "postmand_attempts_total{outcome=\"rejected\"} 2",
                "postmand_attempts_total{outcome=\"timeout\"} 3",
                "postmand_attempts_total{outcome=\"refused\"} 4",
                "postmand_attempts_total{outcome=\"tls\"} 5",
                "postmand_attempts_total{outcome=\"dns\"} 6",
                "postmand_attempts_total{outcome=\"too_large\"} 7",
                "postmand_attempts_total{outcome=\"protocol\"} 8",
                "postmand_attempts_total{outcome=\"body\"} 9",
                "postmand_attempts_total{outcome=\"denied\"} 10",
            ]
        );
    }

    #[test]
    fn requests_by_route_and_code() {
        let metrics = Metrics::default();
        metrics.request("GET /v1/webhooks", 200);
        metrics.request("GET /v1/webhooks", 200);
        metrics.request("unknown", 404);
        let text = metrics.render(None, &[]);
        assert!(
            text.contains(
                "postmand_http_requests_total{route=\"GET /v1/webhooks\",code=\"200\"} 2\n"
            )
        );
        assert!(text.contains("postmand_http_requests_total{route=\"unknown\",code=\"404\"} 1\n"));
    }
}
