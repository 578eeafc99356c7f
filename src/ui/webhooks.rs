//! `/ui/webhooks` (the list) and `/ui/webhooks/{id}` (settings, actions, deliveries). Both
//! take the API's list parameters in their query string (`active`, `status`, `created_at.*`,
//! `limit`, `offset`), parsed by the API's own parser, and read with the API's statements.

use maud::{Markup, html};
use uuid::Uuid;

use super::chart;
use super::layout::{self, csrf_field, pager, percent, status_badge, time};
use super::{Ctx, Form, Refusal, Reply};
use crate::api::errors::ApiError;
use crate::api::query::Query;
use crate::model::{DeliveryStatus, Webhook};
use crate::store::dashboard::{self, Bucket};
use crate::store::{deliveries, webhooks};
use crate::url::EndpointUrl;

/// Attempts a page may read for its success rates: the sample of each hour shrinks as the
/// page lists more webhooks (one or two webhooks: 100 per hour; 10: 20; 50: 5). A webhook's
/// attempts of an hour lie on as many heap pages as there are attempts (other webhooks'
/// attempts come between them), so rows read is what a page pays (scripts/bench-ui.sh).
const SAMPLE_BUDGET: i64 = 4_800;

fn sample_per_hour(webhooks: usize) -> i64 {
    let hours = 24 * i64::try_from(webhooks.max(1)).unwrap_or(i64::MAX);
    (SAMPLE_BUDGET / hours).clamp(5, 100)
}

/// The 24 hourly success rates (oldest first) of `webhook` and the day's, from `buckets`.
fn rates(buckets: &[(Uuid, Bucket)], webhook: Uuid) -> ([Option<f64>; 24], Option<f64>) {
    let mut hours = [None; 24];
    let (mut attempts, mut failed) = (0, 0);
    for (_, bucket) in buckets.iter().filter(|(id, _)| *id == webhook) {
        if let Some(slot) = usize::try_from(bucket.ago)
            .ok()
            .and_then(|ago| 23usize.checked_sub(ago))
        {
            hours[slot] = Some(rate(bucket.attempts, bucket.failed));
            attempts += bucket.attempts;
            failed += bucket.failed;
        }
    }
    (hours, (attempts > 0).then(|| rate(attempts, failed)))
}

fn rate(attempts: i64, failed: i64) -> f64 {
    (attempts - failed) as f64 / attempts.max(1) as f64
}

fn success_cell(buckets: &[(Uuid, Bucket)], webhook: Uuid, sample: i64) -> Markup {
    let (hours, day) = rates(buckets, webhook);
    let label = match day {
        Some(day) => format!(
            "{} of attempts succeeded over the last 24 h, by hour (each hour from its latest {sample} attempts at most)",
            percent(day)
        ),
        None => "no attempts in the last 24 h".to_string(),
    };
    html! {
        span.rate { @match day { Some(day) => (percent(day)), None => "–" } }
        (chart::sparkline(&hours, &label))
    }
}

/// What a webhook's state is: active, or inactive (and why, when postmand disabled it).
fn state(webhook: &Webhook) -> Markup {
    html! {
        @if webhook.settings.active {
            span.badge.active { "active" }
        } @else {
            span.badge.inactive { "inactive" }
            @if let Some(disabled) = &webhook.disabled {
                " " span.reason { "disabled " (time(&disabled.at)) ": " (disabled.reason) }
            }
        }
    }
}

/// `GET /ui/webhooks`.
pub fn list(ctx: &Ctx) -> Result<Reply, Refusal> {
    let mut query = Query::parse(&ctx.query);
    let page = query.page();
    let filter = webhooks::Filter {
        active: query.boolean("active"),
        created: query.created(),
    };
    query.finish()?;
    // A list, like `GET /v1/webhooks`: the read replica's when there is one.
    let mut client = ctx.api.read_client()?;
    let rows = webhooks::list(&mut *client, &filter, page, None)?.rows;
    let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
    let sample = sample_per_hour(ids.len());
    let buckets = dashboard::hourly_success(&mut *client, &ids, sample)?;
    drop(client);
    let content = html! {
        form.filters method="get" action="/ui/webhooks" {
            label { "state "
                select name="active" {
                    option value="" { "any" }
                    option value="true" selected[filter.active == Some(true)] { "active" }
                    option value="false" selected[filter.active == Some(false)] { "inactive" }
                }
            }
            label { "per page " input type="number" name="limit" min="1" max="1000" value=(page.limit); }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            p.note { "No webhook matches." }
        } @else {
            table.webhooks {
                thead { tr { th { "name" } th { "host" } th { "state" } th { "success, last 24 h" } } }
                tbody {
                    @for webhook in &rows {
                        tr {
                            td { a href=(format!("/ui/webhooks/{}", webhook.id)) { (webhook.settings.name) } }
                            td { code { (EndpointUrl::new(&webhook.settings.url).host_port()) } }
                            td { (state(webhook)) }
                            td.spark { (success_cell(&buckets, webhook.id, sample)) }
                        }
                    }
                }
            }
        }
        (pager("/ui/webhooks", &ctx.query, page, rows.len()))
    };
    Ok(Reply::page(200, layout::page(ctx, "Webhooks", content)))
}

/// The notice of an action just done, from the `done` parameter its redirect set.
fn notice(form: &Form) -> Option<String> {
    Some(match form.get("done")? {
        "activated" => "Activated: its pending deliveries are due now.".to_string(),
        "deactivated" => "Deactivated: its deliveries wait until it is active again.".to_string(),
        "rotated" => "Secret rotated.".to_string(),
        "recovered" => {
            let n: u64 = form.get("n")?.parse().ok()?;
            let more = if form.get("more") == Some("true") {
                " More are left in the window: recover again."
            } else {
                ""
            };
            format!("{n} failed deliveries went back to pending.{more}")
        }
        _ => return None,
    })
}

/// `GET /ui/webhooks/{id}`.
pub fn page(ctx: &Ctx, id: Uuid) -> Result<Reply, Refusal> {
    let mut query = Query::parse(&ctx.query);
    let page = query.page();
    let filter = deliveries::Filter {
        webhook_id: Some(id),
        status: query.status(),
        event_id: query.uuid("event_id"),
        created: query.created(),
    };
    query.finish()?;
    let mut client = ctx.api.client()?;
    let webhook = webhooks::get(&mut *client, id)?.ok_or(ApiError::WebhookNotFound)?;
    let failure = dashboard::failure(&mut *client, id)?;
    let rows = deliveries::list(&mut *client, &filter, page, None)?.rows;
    let sample = sample_per_hour(1);
    let buckets = dashboard::hourly_success(&mut *client, &[id], sample)?;
    drop(client);
    let params = Form::parse(&ctx.query);
    let s = &webhook.settings;
    let path = format!("/ui/webhooks/{id}");
    let content = html! {
        @if let Some(notice) = notice(&params) { p.notice { (notice) } }
        p.state { (state(&webhook)) }
        @if let Some((since, failures)) = failure {
            p.notice.bad { "Failing since " (time(&since)) ": " (failures) " failed attempts and no success since." }
        }
        section.columns {
            div {
                h2 { "Settings" }
                dl.settings {
                    dt { "id" } dd { code { (webhook.id) } }
                    dt { "URL" } dd { code { (EndpointUrl::new(&s.url).without_userinfo()) } }
                    dt { "content type" } dd { code { (s.content_type) } }
                    dt { "valid status codes" } dd { (s.valid_status_codes.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")) }
                    dt { "event types" } dd {
                        @if s.event_types.is_empty() { "every type" } @else { (s.event_types.join(", ")) }
                    }
                    dt { "signing" } dd {
                        @if s.secret_token.is_empty() { "unsigned" } @else { "signed (the secret is not shown)" }
                        @if let Some(until) = &webhook.previous_secret_expires_at {
                            "; the previous secret also signs until " (time(until))
                        }
                    }
                    dt { "attempts" } dd { "at most " (s.max_delivery_attempts) ", each up to " (s.delivery_attempt_timeout) " s" }
                    dt { "retry backoff" } dd { (s.retry_min_backoff) " s, doubling, up to " (s.retry_max_backoff) " s" }
                    dt { "created" } dd { (time(&webhook.created_at)) }
                    dt { "updated" } dd { (time(&webhook.updated_at)) }
                    dt { "success, last 24 h" } dd.spark { (success_cell(&buckets, id, sample)) }
                }
            }
            div {
                h2 { "Actions" }
                @let toggle = if s.active { "deactivate" } else { "activate" };
                form.action method="post" action=(format!("{path}/{toggle}")) {
                    (csrf_field(ctx))
                    @if s.active {
                        button type="submit" { "Deactivate" }
                        span.help { " Its deliveries wait, pending, until it is active again." }
                    } @else {
                        button type="submit" { "Activate" }
                        span.help { " Its pending deliveries are due at once." }
                    }
                }
                form.action method="post" action=(format!("{path}/rotate-secret")) {
                    (csrf_field(ctx))
                    fieldset {
                        legend { "Rotate the secret" }
                        label { "new secret " input type="password" name="secret_token" autocomplete="new-password" placeholder="empty: generate one"; }
                        label { "old one signs for " input type="number" name="previous_valid_for" min="0" max="2592000" value="86400"; " s" }
                        button type="submit" { "Rotate secret" }
                    }
                }
                form.action method="post" action=(format!("{path}/recover")) {
                    (csrf_field(ctx))
                    fieldset {
                        legend { "Recover failed deliveries" }
                        label { "created from " input type="text" name="since" required placeholder="2026-01-31T00:00:00Z"; }
                        label { "until " input type="text" name="until" placeholder="empty: now"; }
                        button type="submit" { "Recover" }
                    }
                }
            }
        }
        section {
            h2 { "Deliveries" }
            (delivery_filters(&path, &params, page))
            @if rows.is_empty() {
                p.note { "No delivery matches." }
            } @else {
                table.deliveries {
                    thead { tr { th { "delivery" } th { "status" } th.num { "attempts" } th { "created" } th { "scheduled" } } }
                    tbody {
                        @for d in &rows {
                            tr {
                                td { a href=(format!("/ui/deliveries/{}", d.id)) { code { (d.id) } } }
                                td { (status_badge(d.status)) }
                                td.num { (d.delivery_attempts) }
                                td { (time(&d.created_at)) }
                                td { (time(&d.scheduled_at)) }
                            }
                        }
                    }
                }
            }
            (pager(&path, &ctx.query, page, rows.len()))
        }
    };
    Ok(Reply::page(200, layout::page(ctx, &s.name, content)))
}

/// The filter form of a webhook's deliveries, filled in with the filters in force.
fn delivery_filters(path: &str, params: &Form, page: crate::store::Page) -> Markup {
    let status = params.get("status");
    html! {
        form.filters method="get" action=(path) {
            label { "status "
                select name="status" {
                    option value="" { "any" }
                    @for s in DeliveryStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "created from " input type="text" name="created_at.gte" placeholder="2026-01-31T00:00:00Z" value=(params.get("created_at.gte").unwrap_or("")); }
            label { "before " input type="text" name="created_at.lt" placeholder="RFC 3339" value=(params.get("created_at.lt").unwrap_or("")); }
            label { "per page " input type="number" name="limit" min="1" max="1000" value=(page.limit); }
            button type="submit" { "Filter" }
        }
    }
}

/// The answer to a rotation that generated the secret: the one time it is shown.
pub fn rotated(ctx: &Ctx, webhook: &Webhook) -> Markup {
    let content = html! {
        p.notice { "Secret rotated. Give the new secret to the receiver; it is shown this once." }
        p { "New secret: " code.secret { (webhook.settings.secret_token) } }
        @if let Some(until) = &webhook.previous_secret_expires_at {
            p { "The previous secret signs too until " (time(until)) "." }
        }
        p { a href=(format!("/ui/webhooks/{}", webhook.id)) { "Back to the webhook" } }
    };
    layout::page(ctx, &webhook.settings.name, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_shrinks_as_the_page_grows() {
        assert_eq!(sample_per_hour(1), 100);
        assert_eq!(sample_per_hour(2), 100);
        assert_eq!(sample_per_hour(10), 20);
        assert_eq!(sample_per_hour(50), 5);
        assert_eq!(sample_per_hour(1000), 5);
    }

    #[test]
    fn rates_fill_the_hours_they_have() {
        let id = Uuid::nil();
        let other = Uuid::max();
        let buckets = [
            (
                id,
                Bucket {
                    ago: 0,
                    attempts: 4,
                    failed: 1,
                },
            ),
            (
                id,
                Bucket {
                    ago: 23,
                    attempts: 2,
                    failed: 2,
                },
            ),
            (
                other,
                Bucket {
                    ago: 1,
                    attempts: 9,
                    failed: 0,
                },
            ),
            (
                id,
                Bucket {
                    ago: 24,
                    attempts: 9,
                    failed: 0,
                },
            ),
        ];
        let (hours, day) = rates(&buckets, id);
        assert_eq!(hours[23], Some(0.75));
        assert_eq!(hours[0], Some(0.0));
        assert_eq!(hours.iter().filter(|h| h.is_some()).count(), 2);
        assert_eq!(day, Some(0.5));
        assert_eq!(rates(&[], id), ([None; 24], None));
    }
}
