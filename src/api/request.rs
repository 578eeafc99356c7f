//! One request, from the queue to its reply: the announced-size gate, the dashboard (paths
//! under `/ui`, which keeps its own sessions), Swagger UI's files (a `GET` under `/swagger`,
//! open without the token), the token, routing, the JSON-body gates
//! (415/413), the handler, the reply with its headers, the request counter and one access-log
//! line. A panic in a handler is contained here so the thread keeps serving.

use std::io::{self, Read};
use std::time::Instant;

use tiny_http::{Request, Response};

use super::errors::ApiError;
use super::router::{self, Route};
use super::swagger_ui::{self, Swagger};
use super::{Context, Reply, attempts, deliveries, events, idempotency, webhooks};
use crate::http::{self, constant_time_eq, header, json_response};

/// Answers one request; a panic in it is contained so the thread keeps serving.
pub(super) fn answer(context: &Context, request: Request) {
    if http::announces_body_over(&request, context.max_body_bytes) {
        refuse_oversized(context, request);
        return;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        answer_request(context, request)
    }));
    if outcome.is_err() {
        log::error!("api-request-panicked: the request was dropped; the thread carries on");
    }
}

/// 413 from the announced length alone, before routing: the body is never read and the
/// connection is closed, so however large the announcement, nothing is allocated or kept.
fn refuse_oversized(context: &Context, request: Request) {
    let error = ApiError::BodyTooLarge {
        limit: context.max_body_bytes,
    };
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let response = http::error_response(&error);
    if let Err(e) = request.respond_and_close(response) {
        log::debug!("http-response-not-sent method={method} url={url} error={e}");
    }
    context.metrics.request("unmatched", 413);
    log::debug!(
        "request-completed method={method} url={url} status=413 reason=\"announced body over the limit\""
    );
}

fn answer_request(context: &Context, mut request: Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    if let Some(front) = context.front.as_ref().filter(|front| front.serves(path)) {
        let (route_name, status) = front.answer(context, request);
        context.metrics.request(route_name, status);
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        log::debug!(
            "request-completed method={method} url={url} status={status} took_ms={took_ms:.1}"
        );
        return;
    }
    if method == "GET"
        && let Some(swagger) = swagger_ui::answer(path)
    {
        let status = match swagger {
            Swagger::Redirect => {
                let mut response = Response::empty(302);
                response.add_header(header("Location", swagger_ui::INDEX_PATH));
                respond(request, response, &method, &url);
                302
            }
            Swagger::File { content_type, body } => {
                let mut response = Response::from_data(body.into_owned());
                response.add_header(header("Content-Type", content_type));
                respond(request, response, &method, &url);
                200
            }
        };
        context.metrics.request("GET /swagger/*", status);
        return;
    }
    let mut route_name = "unmatched";
    let result = authorize(context, &request)
        .and_then(|()| router::route(&method, path))
        .and_then(|route| {
            route_name = route.name();
            let body = read_body(&mut request, context.max_body_bytes)?;
            let key = request
                .headers()
                .iter()
                .find(|h| h.field.equiv(idempotency::HEADER))
                .map(|h| h.value.as_str().to_string());
            let reply = handle(context, route, query, &body, key.as_deref());
            if let Err(ApiError::Internal) = &reply {
                log::error!("api-internal-error route={:?}", route.name());
            }
            reply
        });
    let mut replayed = false;
    let (status, body, allow) = match result {
        Ok(reply) => {
            replayed = reply.replayed;
            (reply.status, reply.body, None)
        }
        Err(error) => {
            let allow = match &error {
                ApiError::MethodNotAllowed { allow } => Some(allow.join(", ")),
                _ => None,
            };
            (error.status(), error.body().into_bytes(), allow)
        }
    };
    let mut response = json_response(status, body, allow.as_deref());
    if replayed {
        response.add_header(header(idempotency::REPLAYED_HEADER, "true"));
    }
    respond(request, response, &method, &url);
    context.metrics.request(route_name, status);
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        log::warn!(
            "request-completed method={method} url={url} status={status} took_ms={took_ms:.1}"
        );
    } else {
        log::debug!(
            "request-completed method={method} url={url} status={status} took_ms={took_ms:.1}"
        );
    }
}

fn respond<R: io::Read>(request: Request, response: Response<R>, method: &str, url: &str) {
    if let Err(e) = request.respond(response) {
        log::debug!("http-response-not-sent method={method} url={url} error={e}");
    }
}

/// With `POSTMAND_API_TOKEN` set, every API request must carry `Authorization: Bearer <token>`.
/// The comparison takes the same time wherever the first difference is.
fn authorize(context: &Context, request: &Request) -> Result<(), ApiError> {
    let Some(token) = &context.api_token else {
        return Ok(());
    };
    let given = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str())
        .and_then(|value| {
            let (scheme, credentials) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        })
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Runs the route's handler. `key` is the request's `Idempotency-Key`, which only the two
/// creates read.
fn handle(
    context: &Context,
    route: Route,
    query: &str,
    body: &[u8],
    key: Option<&str>,
) -> Result<Reply, ApiError> {
    match route {
        Route::ListWebhooks => webhooks::list(context, query),
        Route::CreateWebhook => webhooks::create(context, body),
        Route::GetWebhook(id) => webhooks::get(context, id),
        Route::UpdateWebhook(id) => webhooks::update(context, id, body),
        Route::DeleteWebhook(id) => webhooks::delete(context, id),
        Route::ListDeliveries => deliveries::list(context, query),
        Route::CreateDelivery => deliveries::create(context, body, key),
        Route::GetDelivery(id) => deliveries::get(context, id),
        Route::DeleteDelivery(id) => deliveries::delete(context, id),
        Route::RetryDelivery(id) => deliveries::retry(context, id),
        Route::ListAttempts => attempts::list(context, query),
        Route::GetAttempt(id) => attempts::get(context, id),
        Route::RotateSecret(id) => webhooks::rotate_secret(context, id, body),
        Route::RecoverWebhook(id) => webhooks::recover(context, id, body),
        Route::ListEvents => events::list(context, query),
        Route::CreateEvent => events::create(context, body, key),
        Route::GetEvent(id) => events::get(context, id),
    }
}

/// The request body, after the two gates of every route: a body must be JSON (415 otherwise)
/// and at most `limit` bytes (413 otherwise, decided from Content-Length before reading when
/// it is given).
fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let header_value = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    };
    let chunked = header_value("Transfer-Encoding").is_some();
    let declared = request.body_length();
    let has_body = chunked || declared.is_some_and(|n| n > 0);
    if !has_body {
        return Ok(Vec::new());
    }
    // The original cut at ';' after trimming, so "application/json ; charset=utf-8" failed;
    // we cut first.
    let content_type = header_value("Content-Type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    // Never read past a declared length: with `Connection: Upgrade` tiny_http hands over the
    // raw socket as the body, and reading to its end would wait for the client to hang up.
    let cap = declared.map_or(limit as u64 + 1, |n| n as u64);
    let read = request.as_reader().take(cap).read_to_end(&mut body);
    match read {
        Ok(_) if body.len() > limit => Err(ApiError::BodyTooLarge { limit }),
        Ok(_) => Ok(body),
        // The client went away or sent a broken chunked body: nothing useful can be answered.
        Err(_) => Err(ApiError::MalformedBody),
    }
}
