//! `/ui/deliveries/{id}`: a delivery's state, schedule and payload, its attempts with their
//! raw request and response (each in a `<details>`, so no script opens them), and the retry
//! button. Payloads, dumps and errors come from clients and endpoints: they are text, escaped
//! like every value, and a payload that is JSON is only re-indented (`pretty`).

use maud::{Markup, html};
use uuid::Uuid;

use super::layout::{self, csrf_field, pager, status_badge, time};
use super::{Ctx, Form, Refusal, Reply, pretty};
use crate::api::errors::ApiError;
use crate::api::query::Query;
use crate::model::{Attempt, DeliveryStatus};
use crate::store::{attempts, deliveries, webhooks};

/// `GET /ui/deliveries/{id}`: its attempts take the API's attempt-list parameters (`success`,
/// `created_at.*`, `limit`, `offset`).
pub fn page(ctx: &Ctx, id: Uuid) -> Result<Reply, Refusal> {
    let mut query = Query::parse(&ctx.query);
    let page = query.page();
    let filter = attempts::Filter {
        webhook_id: None,
        delivery_id: Some(id),
        success: query.boolean("success"),
        created: query.created(),
    };
    query.finish()?;
    let mut client = ctx.api.client()?;
    let delivery = deliveries::get(&mut *client, id)?.ok_or(ApiError::DeliveryNotFound)?;
    let webhook = webhooks::get(&mut *client, delivery.webhook_id)?;
    let tries = attempts::list(&mut *client, &filter, page, None)?.rows;
    drop(client);
    let params = Form::parse(&ctx.query);
    let pretty = pretty::json(&delivery.payload);
    let path = format!("/ui/deliveries/{id}");
    let pending = delivery.status == DeliveryStatus::Pending;
    let content = html! {
        @if params.get("done") == Some("requeued") {
            p.notice { "Sent back to the queue: pending, due now, with a fresh attempt budget." }
        }
        section.columns {
            div {
                dl.settings {
                    dt { "status" } dd { (status_badge(delivery.status)) }
                    dt { "webhook" } dd {
                        a href=(format!("/ui/webhooks/{}", delivery.webhook_id)) {
                            @match &webhook { Some(w) => (w.settings.name), None => code { (delivery.webhook_id) } }
                        }
                    }
                    dt { "attempts" } dd {
                        (delivery.delivery_attempts)
                        @if let Some(w) = &webhook { " of at most " (w.settings.max_delivery_attempts) }
                    }
                    dt { @if pending { "next attempt" } @else { "last scheduled" } }
                    dd { (time(&delivery.scheduled_at)) }
                    dt { "created" } dd { (time(&delivery.created_at)) }
                    dt { "updated" } dd { (time(&delivery.updated_at)) }
                    @if let Some(event) = delivery.event_id {
                        dt { "event" } dd { code { (event) } }
                    }
                }
            }
            div {
                form.action method="post" action=(format!("{path}/retry")) {
                    (csrf_field(ctx))
                    @if pending {
                        button type="submit" disabled { "Retry now" }
                        span.help { " Pending: it is still in the queue (only a succeeded or failed delivery can be sent again)." }
                    } @else {
                        button type="submit" { "Retry now" }
                        span.help { " Back to pending, due now, with a fresh attempt budget; its attempts stay." }
                    }
                }
            }
        }
        section {
            h2 { "Payload" }
            p.note {
                (delivery.payload.len()) " bytes"
                @if pretty.is_some() { ", JSON, indented here (the receiver gets it as it was sent)" }
            }
            pre.payload { (pretty.as_deref().unwrap_or(&delivery.payload)) }
        }
        section {
            h2 { "Attempts" }
            (attempt_filters(&path, &params, page))
            @if tries.is_empty() {
                p.note { "No attempt matches." }
            }
            @for attempt in &tries { (attempt_view(attempt)) }
            (pager(&path, &ctx.query, page, tries.len()))
        }
    };
    let title = format!("Delivery {id}");
    Ok(Reply::page(200, layout::page(ctx, &title, content)))
}

/// One attempt: outcome, duration and error, and the raw exchange folded away.
fn attempt_view(attempt: &Attempt) -> Markup {
    let exchange = &attempt.exchange;
    html! {
        article.attempt id=(format!("attempt-{}", attempt.id)) {
            header {
                (time(&attempt.created_at))
                " "
                @if exchange.success {
                    span.badge.succeeded { "succeeded" }
                } @else {
                    span.badge.failed { "failed" }
                }
                " "
                @if exchange.response_status_code > 0 {
                    span.code { "HTTP " (exchange.response_status_code) }
                } @else {
                    span.code { "no response" }
                }
                " "
                span.duration { (exchange.execution_duration) " ms" }
            }
            @if !exchange.error.is_empty() {
                p.attempt-error { (exchange.error) }
            }
            details {
                summary { "Raw request and response" }
                h3 { "Request" }
                pre.dump { (exchange.raw_request) }
                h3 { "Response" }
                @if exchange.raw_response.is_empty() {
                    p.note { "No response." }
                } @else {
                    pre.dump { (exchange.raw_response) }
                }
            }
        }
    }
}

/// The filter form of the attempts.
fn attempt_filters(path: &str, params: &Form, page: crate::store::Page) -> Markup {
    let success = params.get("success");
    html! {
        form.filters method="get" action=(path) {
            label { "outcome "
                select name="success" {
                    option value="" { "any" }
                    option value="true" selected[success == Some("true")] { "succeeded" }
                    option value="false" selected[success == Some("false")] { "failed" }
                }
            }
            label { "per page " input type="number" name="limit" min="1" max="1000" value=(page.limit); }
            button type="submit" { "Filter" }
        }
    }
}
