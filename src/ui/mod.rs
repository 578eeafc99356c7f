//! The dashboard at `/ui/` (issue 18): every webhook, delivery and attempt, and the actions
//! on them, as server-rendered HTML with no script. The API server hands it every request
//! under `/ui` (see `api::Front`), before its bearer-token check, since the dashboard keeps
//! its own sessions.
//!
//! The request path, in this file: route (`router`), the session (`session`: a login form
//! when `POSTMAND_API_TOKEN` is set, a redirect to it without a valid cookie), for a `POST`
//! the form and its CSRF token, then the page (`overview`, `webhooks`, `deliveries`) or the
//! action (`actions`), which reaches the database and the API's own steps (retry, recover,
//! rotate, replace) through `api::Context`, so every guard of the REST API holds here too.
//!
//! Every value is escaped by construction: pages are maud templates, which escape whatever is
//! spliced in, and nothing here marks text as already escaped. Every response carries a
//! Content-Security-Policy that allows only this origin's files (no inline script or style)
//! and `X-Frame-Options: DENY`.

mod actions;
mod chart;
mod deliveries;
mod form;
mod layout;
mod overview;
mod pretty;
mod router;
mod session;
mod webhooks;

use std::io::Cursor;

use maud::Markup;
use tiny_http::{Header, Request, Response};

use crate::api::errors::ApiError;
use crate::api::{Context, Front};
pub(crate) use form::Form;
use form::read_form;
use router::{Miss, Route};

/// The stylesheet, compiled in.
const CSS: &str = include_str!("ui.css");

/// The policy of every response: this origin's files only (so no inline script, style or
/// event handler runs, whatever a payload holds), forms post only here, no framing.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard, as the API server holds it.
pub struct Dashboard {
    keys: session::Keys,
}

impl Dashboard {
    /// A dashboard whose login takes `api_token` (`POSTMAND_API_TOKEN`; `None`: no login),
    /// with a fresh CSRF key.
    pub fn new(api_token: Option<String>) -> Result<Dashboard, getrandom::Error> {
        Ok(Dashboard {
            keys: session::Keys::new(api_token)?,
        })
    }
}

/// One request, as pages and actions see it.
pub(crate) struct Ctx<'a> {
    /// The API's context: the pool, the notifier, the handlers' shared steps.
    api: &'a Context,
    /// The query string, parameters with an empty value left out.
    query: String,
    /// The session cookie's value, when a token is configured and the cookie is valid.
    session: Option<String>,
    /// The CSRF token this page's forms carry.
    csrf: String,
}

/// What a page or an action answers.
pub(crate) struct Reply {
    status: u16,
    body: Body,
    /// Where a 303 sends the browser.
    location: Option<String>,
    /// A `Set-Cookie` value.
    cookie: Option<String>,
}

enum Body {
    Html(Markup),
    Css,
    Empty,
}

impl Reply {
    /// An HTML page.
    pub(crate) fn page(status: u16, markup: Markup) -> Reply {
        Reply {
            status,
            body: Body::Html(markup),
            location: None,
            cookie: None,
        }
    }

    /// 303 See Other to `location`, a path of ours (after an action: the browser reloading
    /// the next page does not post the form again).
    pub(crate) fn see_other(location: String) -> Reply {
        Reply {
            status: 303,
            body: Body::Empty,
            location: Some(location),
            cookie: None,
        }
    }
}

/// Why a request was refused; each is an error page.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// What the API would have answered (404 for a missing id, 409 for a pending retry, ...).
    Api(ApiError),
    /// No page has this path.
    NotFound,
    /// The path is a page, but not for this method; the methods it takes.
    MethodNotAllowed(&'static str),
    /// A form without this dashboard's CSRF token for the session.
    Csrf,
    /// A form body that is not a form, or too large: the status and why.
    Form(u16, &'static str),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Api(e)
    }
}

impl From<crate::store::Error> for Refusal {
    fn from(e: crate::store::Error) -> Refusal {
        Refusal::Api(ApiError::from(e))
    }
}

impl Refusal {
    /// The status, the page's title and what it says.
    fn explain(&self) -> (u16, &'static str, String) {
        match self {
            Refusal::Api(e) => {
                let title = match e.status() {
                    400 => "Not a valid request",
                    404 => "Not found",
                    409 => "Not possible now",
                    503 => "The database is unavailable",
                    _ => "Something went wrong",
                };
                let details = e.details();
                let detail = if details.is_empty() {
                    e.message().to_string()
                } else {
                    format!("{}: {details}", e.message())
                };
                (e.status(), title, detail)
            }
            Refusal::NotFound => (
                404,
                "Not found",
                "No page of the dashboard has this address.".to_string(),
            ),
            Refusal::MethodNotAllowed(allow) => (
                405,
                "Method not allowed",
                format!("This address takes {allow} only."),
            ),
            Refusal::Csrf => (
                403,
                "Form refused",
                "The form did not carry this dashboard's CSRF token: it is from another site, \
                 or from before postmand restarted. Nothing was changed. Go back, reload the \
                 page and try again."
                    .to_string(),
            ),
            Refusal::Form(status, why) => (*status, "Form refused", why.to_string()),
        }
    }
}

impl Front for Dashboard {
    fn serves(&self, path: &str) -> bool {
        path == "/ui" || path.starts_with("/ui/")
    }

    fn answer(&self, api: &Context, mut request: Request) -> (&'static str, u16) {
        let method = request.method().as_str().to_string();
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let now = chrono::Utc::now().timestamp();
        let session = header_value(&request, "Cookie")
            .as_deref()
            .and_then(|cookies| session::cookie(cookies, session::COOKIE))
            .filter(|value| self.keys.is_session(value, now))
            .map(str::to_string);
        let route = router::route(&method, path);
        let name = route.as_ref().map_or("/ui unmatched", |route| route.name());
        let ctx = Ctx {
            api,
            query: layout::drop_empty(query),
            csrf: self.keys.csrf(session.as_deref()),
            session,
        };
        let result = match route {
            Ok(route) => self.serve(&ctx, route, &mut request, &url),
            Err(Miss::NotFound) => Err(Refusal::NotFound),
            Err(Miss::MethodNotAllowed(allow)) => Err(Refusal::MethodNotAllowed(allow)),
        };
        let (reply, allow) = match result {
            Ok(reply) => (reply, None),
            Err(refusal) => {
                let (status, title, detail) = refusal.explain();
                if status >= 500 {
                    log::warn!("ui-request-failed method={method} path={path} status={status}");
                }
                // Pages behind the login show their navigation only to a session.
                let shell = (!self.keys.login_required() || ctx.session.is_some()).then_some(&ctx);
                let allow = match refusal {
                    Refusal::MethodNotAllowed(allow) => Some(allow),
                    _ => None,
                };
                let page = layout::error_page(status, title, &detail, shell);
                (Reply::page(status, page), allow)
            }
        };
        let secure = header_value(&request, "X-Forwarded-Proto")
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        let status = reply.status;
        if let Err(e) = request.respond(response(reply, allow, secure)) {
            log::debug!("http-response-not-sent method={method} path={path} error={e}");
        }
        (name, status)
    }
}

impl Dashboard {
    /// The session gate, the form gate, then the page or action.
    fn serve(
        &self,
        ctx: &Ctx,
        route: Route,
        request: &mut Request,
        url: &str,
    ) -> Result<Reply, Refusal> {
        if route.is_open() {
            return match route {
                Route::Stylesheet => Ok(Reply {
                    status: 200,
                    body: Body::Css,
                    location: None,
                    cookie: None,
                }),
                Route::Login => actions::login(&self.keys, &read_form(request)?),
                _ => actions::login_form(&self.keys, ctx),
            };
        }
        if self.keys.login_required() && ctx.session.is_none() {
            let location = match route.is_action() {
                true => "/ui/login".to_string(),
                false => format!("/ui/login?next={}", layout::encode(url)),
            };
            return Ok(Reply::see_other(location));
        }
        let form = if route.is_action() {
            let form = read_form(request)?;
            let given = form.get("csrf").unwrap_or("");
            if !self.keys.is_csrf(ctx.session.as_deref(), given) {
                log::info!("ui-form-refused reason=csrf route={:?}", route.name());
                return Err(Refusal::Csrf);
            }
            form
        } else {
            Form::default()
        };
        match route {
            Route::Root => Ok(Reply::see_other("/ui/".to_string())),
            Route::Overview => overview::page(ctx),
            Route::Find => overview::find(ctx),
            Route::Webhooks => webhooks::list(ctx),
            Route::Webhook(id) => webhooks::page(ctx, id),
            Route::WebhookAction(id, action) => actions::webhook(ctx, id, action, &form),
            Route::Delivery(id) => deliveries::page(ctx, id),
            Route::Retry(id) => actions::retry(ctx, id),
            Route::Logout => Ok(actions::logout()),
            Route::Stylesheet | Route::LoginForm | Route::Login => Err(Refusal::NotFound),
        }
    }
}

pub(crate) fn header_value(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

/// The HTTP response of `reply`, with the headers every dashboard response carries.
fn response(reply: Reply, allow: Option<&str>, secure: bool) -> Response<Cursor<Vec<u8>>> {
    let (content_type, body, cache) = match reply.body {
        Body::Html(markup) => (
            "text/html; charset=utf-8",
            markup.into_string().into_bytes(),
            "no-store",
        ),
        // Compiled into the binary: it changes only with an upgrade.
        Body::Css => (
            "text/css; charset=utf-8",
            CSS.as_bytes().to_vec(),
            "max-age=300",
        ),
        Body::Empty => ("text/plain; charset=utf-8", Vec::new(), "no-store"),
    };
    let mut response = Response::from_data(body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", content_type.to_string()),
        ("Content-Security-Policy", CSP.to_string()),
        ("X-Frame-Options", "DENY".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "same-origin".to_string()),
        ("Cache-Control", cache.to_string()),
    ];
    if let Some(location) = reply.location {
        headers.push(("Location", location));
    }
    if let Some(allow) = allow {
        headers.push(("Allow", allow.to_string()));
    }
    if let Some(cookie) = reply.cookie {
        let secure = if secure { "; Secure" } else { "" };
        headers.push(("Set-Cookie", format!("{cookie}{secure}")));
    }
    for (name, value) in headers {
        // Every value is ours: constants, paths of ours percent-encoded, cookie digits and hex.
        // One that is not valid header text is left out rather than sent broken.
        match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => response.add_header(header),
            Err(()) => log::error!("ui-header-invalid name={name}"),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    /// Escaping holds by construction only while no template opts out of it.
    #[test]
    fn no_template_marks_text_as_already_escaped() {
        let opt_out = concat!("Pre", "Escaped");
        for (file, text) in [
            ("actions.rs", include_str!("actions.rs")),
            ("chart.rs", include_str!("chart.rs")),
            ("deliveries.rs", include_str!("deliveries.rs")),
            ("form.rs", include_str!("form.rs")),
            ("layout.rs", include_str!("layout.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("overview.rs", include_str!("overview.rs")),
            ("pretty.rs", include_str!("pretty.rs")),
            ("router.rs", include_str!("router.rs")),
            ("session.rs", include_str!("session.rs")),
            ("webhooks.rs", include_str!("webhooks.rs")),
        ] {
            assert!(!text.contains(opt_out), "{file} uses {opt_out}");
        }
    }
}
