//! The dashboard's route table: every page and action under `/ui`, matched on (method, path
//! segments). Ids are parsed here; a path id that is not a UUID names nothing (404).

use uuid::Uuid;

/// A change to a webhook, each its own form and `POST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAction {
    /// Active again (clears why postmand disabled it), its backlog due now.
    Activate,
    /// Inactive: its deliveries wait.
    Deactivate,
    /// A new secret; the old one signs beside it for a while.
    RotateSecret,
    /// Failed deliveries of a time window go back to pending.
    Recover,
}

/// What a request under `/ui` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /ui`: to `/ui/`.
    Root,
    /// `GET /ui/`: queue, statuses, attempts per minute, failing webhooks.
    Overview,
    /// `GET /ui/ui.css`: the one stylesheet (open without a session: the login form uses it).
    Stylesheet,
    /// `GET /ui/login`: the form.
    LoginForm,
    /// `POST /ui/login`: the token in, a session cookie out.
    Login,
    /// `POST /ui/logout`.
    Logout,
    /// `GET /ui/find?id=`: the delivery, webhook or attempt with that id.
    Find,
    /// `GET /ui/webhooks`: the list.
    Webhooks,
    /// `GET /ui/webhooks/{id}`: settings and deliveries.
    Webhook(Uuid),
    /// `POST /ui/webhooks/{id}/<action>`.
    WebhookAction(Uuid, WebhookAction),
    /// `GET /ui/deliveries/{id}`: payload and attempts.
    Delivery(Uuid),
    /// `POST /ui/deliveries/{id}/retry`.
    Retry(Uuid),
}

impl Route {
    /// Whether the route is served without a session (what logging in needs).
    pub fn is_open(self) -> bool {
        matches!(self, Route::Stylesheet | Route::LoginForm | Route::Login)
    }

    /// The name its requests are counted under in `postmand_http_requests_total`.
    pub fn name(self) -> &'static str {
        match self {
            Route::Root | Route::Overview => "GET /ui/",
            Route::Stylesheet => "GET /ui/ui.css",
            Route::LoginForm => "GET /ui/login",
            Route::Login => "POST /ui/login",
            Route::Logout => "POST /ui/logout",
            Route::Find => "GET /ui/find",
            Route::Webhooks => "GET /ui/webhooks",
            Route::Webhook(_) => "GET /ui/webhooks/{webhook_id}",
            Route::WebhookAction(_, WebhookAction::Activate) => {
                "POST /ui/webhooks/{webhook_id}/activate"
            }
            Route::WebhookAction(_, WebhookAction::Deactivate) => {
                "POST /ui/webhooks/{webhook_id}/deactivate"
            }
            Route::WebhookAction(_, WebhookAction::RotateSecret) => {
                "POST /ui/webhooks/{webhook_id}/rotate-secret"
            }
            Route::WebhookAction(_, WebhookAction::Recover) => {
                "POST /ui/webhooks/{webhook_id}/recover"
            }
            Route::Delivery(_) => "GET /ui/deliveries/{delivery_id}",
            Route::Retry(_) => "POST /ui/deliveries/{delivery_id}/retry",
        }
    }

    /// Whether it changes state (and so needs a CSRF token).
    pub fn is_action(self) -> bool {
        matches!(
            self,
            Route::Logout | Route::WebhookAction(..) | Route::Retry(_)
        )
    }
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No page has this path (or its id is not a UUID).
    NotFound,
    /// The path is a page, but not for this method; these are.
    MethodNotAllowed(&'static str),
}

/// The route of `method path` (`path` without its query string, starting with `/ui`).
pub fn route(method: &str, path: &str) -> Result<Route, Miss> {
    // tiny_http sends no body with the answer to a HEAD.
    let method = if method == "HEAD" { "GET" } else { method };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let id = |text: &str| Uuid::parse_str(text).map_err(|_| Miss::NotFound);
    let (allow, route) = match segments.as_slice() {
        ["ui"] => ("GET", Ok(Route::Root)),
        ["ui", ""] => ("GET", Ok(Route::Overview)),
        ["ui", "ui.css"] => ("GET", Ok(Route::Stylesheet)),
        ["ui", "login"] if method == "POST" => ("GET, POST", Ok(Route::Login)),
        ["ui", "login"] => ("GET, POST", Ok(Route::LoginForm)),
        ["ui", "logout"] => ("POST", Ok(Route::Logout)),
        ["ui", "find"] => ("GET", Ok(Route::Find)),
        ["ui", "webhooks"] => ("GET", Ok(Route::Webhooks)),
        ["ui", "webhooks", webhook] => ("GET", id(webhook).map(Route::Webhook)),
        ["ui", "webhooks", webhook, action] => {
            let action = match *action {
                "activate" => WebhookAction::Activate,
                "deactivate" => WebhookAction::Deactivate,
                "rotate-secret" => WebhookAction::RotateSecret,
                "recover" => WebhookAction::Recover,
                _ => return Err(Miss::NotFound),
            };
            (
                "POST",
                id(webhook).map(|id| Route::WebhookAction(id, action)),
            )
        }
        ["ui", "deliveries", delivery] => ("GET", id(delivery).map(Route::Delivery)),
        ["ui", "deliveries", delivery, "retry"] => ("POST", id(delivery).map(Route::Retry)),
        _ => return Err(Miss::NotFound),
    };
    let route = route?;
    if allow.split(", ").any(|allowed| allowed == method) {
        Ok(route)
    } else {
        Err(Miss::MethodNotAllowed(allow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";

    fn id() -> Uuid {
        Uuid::parse_str(ID).unwrap()
    }

    #[test]
    fn every_page_and_action_matches() {
        let cases = [
            ("GET", "/ui".to_string(), Route::Root),
            ("GET", "/ui/".to_string(), Route::Overview),
            ("HEAD", "/ui/".to_string(), Route::Overview),
            ("GET", "/ui/ui.css".to_string(), Route::Stylesheet),
            ("GET", "/ui/login".to_string(), Route::LoginForm),
            ("POST", "/ui/login".to_string(), Route::Login),
            ("POST", "/ui/logout".to_string(), Route::Logout),
            ("GET", "/ui/find".to_string(), Route::Find),
            ("GET", "/ui/webhooks".to_string(), Route::Webhooks),
            ("GET", format!("/ui/webhooks/{ID}"), Route::Webhook(id())),
            (
                "POST",
                format!("/ui/webhooks/{ID}/activate"),
                Route::WebhookAction(id(), WebhookAction::Activate),
            ),
            (
                "POST",
                format!("/ui/webhooks/{ID}/deactivate"),
                Route::WebhookAction(id(), WebhookAction::Deactivate),
            ),
            (
                "POST",
                format!("/ui/webhooks/{ID}/rotate-secret"),
                Route::WebhookAction(id(), WebhookAction::RotateSecret),
            ),
            (
                "POST",
                format!("/ui/webhooks/{ID}/recover"),
                Route::WebhookAction(id(), WebhookAction::Recover),
            ),
            ("GET", format!("/ui/deliveries/{ID}"), Route::Delivery(id())),
            (
                "POST",
                format!("/ui/deliveries/{ID}/retry"),
                Route::Retry(id()),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(method, &path), Ok(expected), "{method} {path}");
        }
    }

    #[test]
    fn only_forms_that_change_something_are_actions() {
        assert!(Route::Retry(id()).is_action());
        assert!(Route::Logout.is_action());
        assert!(!Route::Login.is_action(), "checked by the token instead");
        assert!(!Route::Delivery(id()).is_action());
        assert!(Route::Login.is_open() && !Route::Overview.is_open());
    }

    #[test]
    fn wrong_methods_are_405_with_the_right_allow() {
        assert_eq!(
            route("GET", &format!("/ui/deliveries/{ID}/retry")),
            Err(Miss::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route("POST", &format!("/ui/deliveries/{ID}")),
            Err(Miss::MethodNotAllowed("GET"))
        );
        assert_eq!(
            route("DELETE", "/ui/login"),
            Err(Miss::MethodNotAllowed("GET, POST"))
        );
    }

    #[test]
    fn unknown_paths_and_bad_ids_are_not_found() {
        for path in [
            "/ui/nope",
            "/ui//",
            "/ui/webhooks/nope",
            &format!("/ui/webhooks/{ID}/"),
            &format!("/ui/webhooks/{ID}/delete"),
            &format!("/ui/deliveries/{ID}/retry/x"),
            "/ui/deliveries/123/retry",
            "/ui/../v1/webhooks",
        ] {
            assert_eq!(route("GET", path), Err(Miss::NotFound), "{path}");
            assert_eq!(route("POST", path), Err(Miss::NotFound), "{path}");
        }
    }
}
