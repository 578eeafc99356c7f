//! The overview (`/ui/`): is the queue moving, are attempts succeeding, who is failing. Every
//! number comes from a bounded, indexed read (`store::queue::queue_stats`, `store::dashboard`),
//! so the page costs the same on a day-old database and on one with millions of deliveries.
//! Also `/ui/find`, the search box of every page.

use chrono::Utc;
use maud::html;
use uuid::Uuid;

use super::chart::{self, Minute};
use super::layout::{self, age, ago, count, time};
use super::{Ctx, Form, Refusal, Reply};
use crate::api::errors::ApiError;
use crate::store::{attempts, dashboard, deliveries, queue, webhooks};
use crate::url::EndpointUrl;

/// Deliveries whose statuses the overview counts, newest first.
const NEWEST: i64 = 5_000;

/// Failing webhooks listed at most.
const FAILING_SHOWN: i64 = 50;

/// `GET /ui/`.
pub fn page(ctx: &Ctx) -> Result<Reply, Refusal> {
    // Counts and charts may lag the primary: the read replica's when there is one.
    let mut client = ctx.api.read_client()?;
    let queue::QueueStats {
        pending,
        due,
        oldest_due_age_secs: oldest_due_secs,
        deliveries_estimate: estimate,
        ..
    } = queue::queue_stats(&mut *client)?;
    let statuses = dashboard::recent_statuses(&mut *client, NEWEST)?;
    let buckets = dashboard::attempts_per_minute(&mut *client)?;
    let failing = dashboard::failing(&mut *client, FAILING_SHOWN)?;
    let (webhook_count, active_count) = dashboard::webhook_counts(&mut *client)?;
    drop(client);
    let now = Utc::now();

    let mut minutes = [Minute::default(); 60];
    for bucket in &buckets {
        // `ago` counts back from now: 0 is the last minute, drawn rightmost.
        if let Some(slot) = usize::try_from(bucket.ago)
            .ok()
            .and_then(|ago| 59usize.checked_sub(ago))
        {
            minutes[slot] = Minute {
                attempts: bucket.attempts,
                failed: bucket.failed,
            };
        }
    }
    let hour_attempts: i64 = minutes.iter().map(|m| m.attempts).sum();
    let hour_failed: i64 = minutes.iter().map(|m| m.failed).sum();
    let counted: i64 = statuses.iter().map(|s| s.deliveries).sum();
    let oldest_counted = statuses.iter().map(|s| s.oldest).min();

    let content = html! {
        section.cards {
            div.card {
                h2 { "Queue depth" }
                p.big { (count(due)) }
                p { "deliveries due now, " (count(pending)) " pending in all" }
            }
            div.card {
                h2 { "Oldest due delivery" }
                p.big { @if due > 0 { (age(oldest_due_secs)) } @else { "–" } }
                p { "how long it has waited for a dispatcher" }
            }
            div.card {
                h2 { "Attempts, last hour" }
                p.big { (count(hour_attempts)) }
                p { (count(hour_failed)) " failed" }
            }
            div.card {
                h2 { "Webhooks" }
                p.big { a href="/ui/webhooks" { (count(webhook_count)) } }
                p { (active_count) " active, " (webhook_count - active_count) " inactive" }
            }
        }
        section {
            h2 { "Attempts per minute, last hour" }
            (chart::attempts_per_minute(&minutes))
            p.legend { span.key.ok {} "succeeded " span.key.bad {} "failed" }
        }
        section {
            h2 { "Deliveries by status" }
            @if counted == 0 {
                p.note { "No delivery yet." }
            } @else {
                p.note {
                    "The newest " (count(counted)) " deliveries"
                    @if let Some(oldest) = oldest_counted { " (since " (time(&oldest)) ")" }
                    @if estimate > counted {
                        ", of about " (count(estimate)) " in all (counting every one would read the whole table)"
                    }
                    "."
                }
            }
            table.statuses {
                thead { tr { th { "status" } th.num { "deliveries" } th { "share" } } }
                tbody {
                    @for status in ["pending", "succeeded", "failed"] {
                        @let n = statuses.iter().find(|s| s.status == status).map_or(0, |s| s.deliveries);
                        tr {
                            td { span.badge.(status) { (status) } }
                            td.num { (count(n)) }
                            td { meter min="0" max=(counted.max(1)) value=(n) { (n) } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Failing now" }
            @if failing.is_empty() {
                p.note { "No webhook is failing: every webhook's latest attempt succeeded, or it has none." }
            } @else {
                p.note { "Webhooks whose attempts have all failed since the time shown." }
                table {
                    thead { tr { th { "webhook" } th { "host" } th { "failing since" } th.num { "failed attempts" } th { "state" } } }
                    tbody {
                        @for f in &failing {
                            tr {
                                td { a href=(format!("/ui/webhooks/{}", f.webhook_id)) { (f.name) } }
                                td { code { (EndpointUrl::new(&f.url).host_port()) } }
                                td { (time(&f.failing_since)) " (" (ago(&f.failing_since, &now)) ")" }
                                td.num { (count(i64::from(f.failures))) }
                                td {
                                    @if f.active { "active" } @else {
                                        "disabled"
                                        @if let Some(reason) = &f.disabled_reason { ": " (reason) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Reply::page(200, layout::page(ctx, "Overview", content)))
}

/// `GET /ui/find?id=`: the delivery, webhook or attempt with that id, in that order.
pub fn find(ctx: &Ctx) -> Result<Reply, Refusal> {
    let given = Form::parse(&ctx.query).given("id").unwrap_or_default();
    let Ok(id) = Uuid::parse_str(&given) else {
        return Err(ApiError::invalid("id", "must be a valid UUID").into());
    };
    let mut client = ctx.api.client()?;
    if deliveries::get(&mut *client, id)?.is_some() {
        return Ok(Reply::see_other(format!("/ui/deliveries/{id}")));
    }
    if webhooks::get(&mut *client, id)?.is_some() {
        return Ok(Reply::see_other(format!("/ui/webhooks/{id}")));
    }
    if let Some(attempt) = attempts::get(&mut *client, id)? {
        return Ok(Reply::see_other(format!(
            "/ui/deliveries/{}#attempt-{id}",
            attempt.delivery_id
        )));
    }
    let content = html! {
        p.detail { "No delivery, webhook or attempt has the id " code { (id) } "." }
    };
    Ok(Reply::page(404, layout::page(ctx, "Not found", content)))
}
