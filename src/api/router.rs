//! The route table of the whole API: one `match` over `(method, path segments)` giving a
//! [`Route`], with ids parsed here so a handler only ever sees a `Uuid`. Pure: no I/O,
//! unit-tested below.
//!
//! A bad id is the original's 404 code 2, decided before any handler or body read. A known path
//! with another method is a 405 whose `Allow` list comes from the same table: every method of
//! [`METHODS`] is tried against it for that path. A path no method routes is a 404 code 13.
//! Collection paths match with or without a trailing slash, as in the original; an item path
//! with one is unknown. [`PATHS`] is only a constant copy for the OpenAPI cross-check and the
//! fault tests, pinned to the table by a test.

use uuid::Uuid;

use super::errors::ApiError;
use super::query::percent_decode_path;

/// Every operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/webhooks`
    ListWebhooks,
    /// `POST /v1/webhooks`
    CreateWebhook,
    /// `GET /v1/webhooks/{id}`
    GetWebhook(Uuid),
    /// `PUT /v1/webhooks/{id}`
    UpdateWebhook(Uuid),
    /// `DELETE /v1/webhooks/{id}`
    DeleteWebhook(Uuid),
    /// `GET /v1/deliveries`
    ListDeliveries,
    /// `POST /v1/deliveries`
    CreateDelivery,
    /// `GET /v1/deliveries/{id}`
    GetDelivery(Uuid),
    /// `DELETE /v1/deliveries/{id}`
    DeleteDelivery(Uuid),
    /// `POST /v1/deliveries/{id}/retry`
    RetryDelivery(Uuid),
    /// `GET /v1/delivery-attempts`
    ListAttempts,
    /// `GET /v1/delivery-attempts/{id}`
    GetAttempt(Uuid),
    /// `POST /v1/webhooks/{id}/rotate-secret`
    RotateSecret(Uuid),
    /// `POST /v1/webhooks/{id}/recover`
    RecoverWebhook(Uuid),
    /// `GET /v1/events`
    ListEvents,
    /// `POST /v1/events`
    CreateEvent,
    /// `GET /v1/events/{id}`
    GetEvent(Uuid),
}

impl Route {
    /// A stable name for logs and metrics: the path pattern with its method.
    pub fn name(self) -> &'static str {
        match self {
            Route::ListWebhooks => "GET /v1/webhooks",
            Route::CreateWebhook => "POST /v1/webhooks",
            Route::GetWebhook(_) => "GET /v1/webhooks/{webhook_id}",
            Route::UpdateWebhook(_) => "PUT /v1/webhooks/{webhook_id}",
            Route::DeleteWebhook(_) => "DELETE /v1/webhooks/{webhook_id}",
            Route::ListDeliveries => "GET /v1/deliveries",
            Route::CreateDelivery => "POST /v1/deliveries",
            Route::GetDelivery(_) => "GET /v1/deliveries/{delivery_id}",
            Route::DeleteDelivery(_) => "DELETE /v1/deliveries/{delivery_id}",
            Route::RetryDelivery(_) => "POST /v1/deliveries/{delivery_id}/retry",
            Route::ListAttempts => "GET /v1/delivery-attempts",
            Route::GetAttempt(_) => "GET /v1/delivery-attempts/{delivery_attempt_id}",
            Route::RotateSecret(_) => "POST /v1/webhooks/{webhook_id}/rotate-secret",
            Route::RecoverWebhook(_) => "POST /v1/webhooks/{webhook_id}/recover",
            Route::ListEvents => "GET /v1/events",
            Route::CreateEvent => "POST /v1/events",
            Route::GetEvent(_) => "GET /v1/events/{event_id}",
        }
    }
}

/// The methods tried against the table to build a 405's `Allow` list, in the order it lists them.
/// A route whose method is missing here would be left out of `Allow`; a test checks none is.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// The path patterns and their methods, for the OpenAPI cross-check and the fault tests, which
/// need them as a constant (a `match` on strings cannot run at compile time). [`route`] never
/// reads this: a test below checks it is exactly what the table routes.
pub const PATHS: &[(&str, &[&str])] = &[
    ("/v1/webhooks", &["GET", "POST"]),
    ("/v1/webhooks/{webhook_id}", &["GET", "PUT", "DELETE"]),
    ("/v1/webhooks/{webhook_id}/rotate-secret", &["POST"]),
    ("/v1/webhooks/{webhook_id}/recover", &["POST"]),
    ("/v1/deliveries", &["GET", "POST"]),
    ("/v1/deliveries/{delivery_id}", &["GET", "DELETE"]),
    ("/v1/deliveries/{delivery_id}/retry", &["POST"]),
    ("/v1/delivery-attempts", &["GET"]),
    ("/v1/delivery-attempts/{delivery_attempt_id}", &["GET"]),
    ("/v1/events", &["GET", "POST"]),
    ("/v1/events/{event_id}", &["GET"]),
];

/// Which route serves `method path` (the path without its query string).
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let Some(path) = path.strip_prefix('/') else {
        return Err(ApiError::RouteNotFound);
    };
    // "/v1/webhooks" -> ["v1", "webhooks"]; a collection's trailing slash adds an empty
    // segment, dropped here. An item path's is kept, so it matches nothing.
    let mut segments: Vec<&str> = path.split('/').collect();
    if let ["v1", _, ""] = segments.as_slice() {
        segments.pop();
    }
    if let Some(routed) = table(method, &segments) {
        return routed;
    }
    let allow: Vec<&'static str> = METHODS
        .iter()
        .copied()
        .filter(|other| table(other, &segments).is_some())
        .collect();
    if allow.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// The route table: `None` when no arm has this method and path, else the arm's answer (an
/// arm with a bad id still counts as routing the method, so a 405's `Allow` keeps it).
fn table(method: &str, segments: &[&str]) -> Option<Result<Route, ApiError>> {
    Some(match (method, segments) {
        ("GET", ["v1", "webhooks"]) => Ok(Route::ListWebhooks),
        ("POST", ["v1", "webhooks"]) => Ok(Route::CreateWebhook),
        ("GET", ["v1", "webhooks", webhook]) => id(webhook).map(Route::GetWebhook),
        ("PUT", ["v1", "webhooks", webhook]) => id(webhook).map(Route::UpdateWebhook),
        ("DELETE", ["v1", "webhooks", webhook]) => id(webhook).map(Route::DeleteWebhook),
        ("POST", ["v1", "webhooks", webhook, "rotate-secret"]) => {
            id(webhook).map(Route::RotateSecret)
        }
        ("POST", ["v1", "webhooks", webhook, "recover"]) => id(webhook).map(Route::RecoverWebhook),
        ("GET", ["v1", "deliveries"]) => Ok(Route::ListDeliveries),
        ("POST", ["v1", "deliveries"]) => Ok(Route::CreateDelivery),
        ("GET", ["v1", "deliveries", delivery]) => id(delivery).map(Route::GetDelivery),
        ("DELETE", ["v1", "deliveries", delivery]) => id(delivery).map(Route::DeleteDelivery),
        ("POST", ["v1", "deliveries", delivery, "retry"]) => id(delivery).map(Route::RetryDelivery),
        ("GET", ["v1", "delivery-attempts"]) => Ok(Route::ListAttempts),
        ("GET", ["v1", "delivery-attempts", attempt]) => id(attempt).map(Route::GetAttempt),
        ("GET", ["v1", "events"]) => Ok(Route::ListEvents),
        ("POST", ["v1", "events"]) => Ok(Route::CreateEvent),
        ("GET", ["v1", "events", event]) => id(event).map(Route::GetEvent),
        _ => return None,
    })
}

/// A path id: an empty segment is no route at all, anything else not a UUID is code 2. The
/// segment is percent-decoded first, so each form `Uuid::parse_str` takes (the OpenAPI
/// document's `UUID` pattern) works however a client escapes it: a client must escape the
/// braces of `{…}`, and may escape any other character.
fn id(text: &str) -> Result<Uuid, ApiError> {
    if text.is_empty() {
        return Err(ApiError::RouteNotFound);
    }
    let decoded = percent_decode_path(text).ok_or(ApiError::InvalidId)?;
    Uuid::parse_str(&decoded).map_err(|_| ApiError::InvalidId)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";

    fn id() -> Uuid {
        Uuid::parse_str(ID).unwrap()
    }

    #[test]
    fn every_route_matches() {
        let cases = [
            ("GET", "/v1/webhooks".to_string(), Route::ListWebhooks),
            ("POST", "/v1/webhooks/".to_string(), Route::CreateWebhook),
            ("GET", format!("/v1/webhooks/{ID}"), Route::GetWebhook(id())),
            (
                "PUT",
                format!("/v1/webhooks/{ID}"),
                Route::UpdateWebhook(id()),
            ),
            (
                "DELETE",
                format!("/v1/webhooks/{ID}"),
                Route::DeleteWebhook(id()),
            ),
            ("GET", "/v1/deliveries".to_string(), Route::ListDeliveries),
            ("POST", "/v1/deliveries".to_string(), Route::CreateDelivery),
            (
                "GET",
                format!("/v1/deliveries/{ID}"),
                Route::GetDelivery(id()),
            ),
            (
                "DELETE",
                format!("/v1/deliveries/{ID}"),
                Route::DeleteDelivery(id()),
            ),
            (
                "POST",
                format!("/v1/deliveries/{ID}/retry"),
                Route::RetryDelivery(id()),
            ),
            (
                "GET",
                "/v1/delivery-attempts".to_string(),
                Route::ListAttempts,
            ),
            (
                "GET",
                format!("/v1/delivery-attempts/{ID}"),
                Route::GetAttempt(id()),
            ),
            ("GET", "/v1/events".to_string(), Route::ListEvents),
            ("POST", "/v1/events/".to_string(), Route::CreateEvent),
            ("GET", format!("/v1/events/{ID}"), Route::GetEvent(id())),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(method, &path), Ok(expected), "{method} {path}");
        }
    }

    #[test]
    fn ids_in_every_uuid_form_are_accepted() {
        for form in [
            ID.to_uppercase(),
            format!("{{{ID}}}"),
            format!("urn:uuid:{ID}"),
            ID.replace('-', ""),
            // Escaped, as a client must escape the braces, and may escape anything else.
            format!("%7B{ID}%7d"),
            format!("urn%3Auuid%3A{}", ID.replacen('a', "%61", 1)),
        ] {
            assert_eq!(
                route("GET", &format!("/v1/webhooks/{form}")),
                Ok(Route::GetWebhook(id()))
            );
        }
    }

    #[test]
    fn bad_id_is_invalid_id() {
        assert_eq!(route("GET", "/v1/webhooks/nope"), Err(ApiError::InvalidId));
        assert_eq!(
            route("DELETE", "/v1/deliveries/123"),
            Err(ApiError::InvalidId)
        );
        for broken in ["%zz", "%7", "%ff%fe", "%2F"] {
            assert_eq!(
                route("GET", &format!("/v1/events/{broken}")),
                Err(ApiError::InvalidId),
                "{broken}"
            );
        }
    }

    #[test]
    fn wrong_method_is_405_with_allowed_methods() {
        assert_eq!(
            route("PATCH", &format!("/v1/webhooks/{ID}")),
            Err(ApiError::MethodNotAllowed {
                allow: vec!["GET", "PUT", "DELETE"]
            })
        );
        assert_eq!(
            route("HEAD", "/v1/delivery-attempts"),
            Err(ApiError::MethodNotAllowed { allow: vec!["GET"] })
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/v1",
            "/v2/webhooks",
            &format!("/v1/webhooks/{ID}/"),
            "/v1/webhooks//",
        ] {
            assert_eq!(route("GET", path), Err(ApiError::RouteNotFound), "{path}");
        }
    }

    /// Every route, each once. The match makes a new variant fail to compile here until it
    /// is given the next index, and the assertion until it is listed.
    fn all_routes() -> Vec<Route> {
        let all = vec![
            Route::ListWebhooks,
            Route::CreateWebhook,
            Route::GetWebhook(id()),
            Route::UpdateWebhook(id()),
            Route::DeleteWebhook(id()),
            Route::ListDeliveries,
            Route::CreateDelivery,
            Route::GetDelivery(id()),
            Route::DeleteDelivery(id()),
            Route::RetryDelivery(id()),
            Route::ListAttempts,
            Route::GetAttempt(id()),
            Route::ListEvents,
            Route::CreateEvent,
            Route::GetEvent(id()),
            Route::RotateSecret(id()),
            Route::RecoverWebhook(id()),
        ];
        let index = |route: &Route| match route {
            Route::ListWebhooks => 0,
            Route::CreateWebhook => 1,
            Route::GetWebhook(_) => 2,
            Route::UpdateWebhook(_) => 3,
            Route::DeleteWebhook(_) => 4,
            Route::ListDeliveries => 5,
            Route::CreateDelivery => 6,
            Route::GetDelivery(_) => 7,
            Route::DeleteDelivery(_) => 8,
            Route::RetryDelivery(_) => 9,
            Route::ListAttempts => 10,
            Route::GetAttempt(_) => 11,
            Route::ListEvents => 12,
            Route::CreateEvent => 13,
            Route::GetEvent(_) => 14,
            Route::RotateSecret(_) => 15,
            Route::RecoverWebhook(_) => 16,
        };
        let indices: Vec<usize> = all.iter().map(index).collect();
        assert_eq!(indices, (0..17).collect::<Vec<_>>());
        all
    }

    /// A concrete path for a pattern: every `{...}` segment becomes `ID`.
    fn concrete(pattern: &str) -> String {
        pattern
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    ID
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_route_round_trips_through_its_name() {
        let mut names = Vec::new();
        for expected in all_routes() {
            let (method, pattern) = expected.name().split_once(' ').unwrap();
            assert!(
                METHODS.contains(&method),
                "{method} is missing from METHODS"
            );
            let path = concrete(pattern);
            assert_eq!(route(method, &path), Ok(expected), "{method} {path}");
            if !pattern.contains('{') {
                let slashed = format!("{path}/");
                assert_eq!(route(method, &slashed), Ok(expected), "{method} {slashed}");
            }
            names.push(expected.name());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 17, "route names are unique");
    }

    #[test]
    fn allow_lists_are_exactly_todays() {
        // The Allow header each known path has always sent, in its order.
        let known: [(String, &[&str]); 11] = [
            ("/v1/webhooks".to_string(), &["GET", "POST"]),
            ("/v1/webhooks/".to_string(), &["GET", "POST"]),
            (format!("/v1/webhooks/{ID}"), &["GET", "PUT", "DELETE"]),
            ("/v1/webhooks/nope".to_string(), &["GET", "PUT", "DELETE"]),
            ("/v1/deliveries".to_string(), &["GET", "POST"]),
            ("/v1/deliveries/".to_string(), &["GET", "POST"]),
            (format!("/v1/deliveries/{ID}"), &["GET", "DELETE"]),
            (format!("/v1/deliveries/{ID}/retry"), &["POST"]),
            ("/v1/deliveries//retry".to_string(), &["POST"]),
            ("/v1/delivery-attempts/".to_string(), &["GET"]),
            (format!("/v1/delivery-attempts/{ID}"), &["GET"]),
        ];
        for (path, allow) in &known {
            for method in METHODS.iter().chain(&["get", "FOO", ""]) {
                if allow.contains(method) {
                    continue;
                }
                assert_eq!(
                    route(method, path),
                    Err(ApiError::MethodNotAllowed {
                        allow: allow.to_vec()
                    }),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn paths_is_exactly_what_the_table_routes() {
        for (pattern, allow) in PATHS {
            let path = concrete(pattern);
            for method in METHODS {
                match route(method, &path) {
                    Ok(routed) => {
                        assert!(allow.contains(method), "{method} {path}");
                        assert_eq!(routed.name(), format!("{method} {pattern}"));
                    }
                    Err(error) => {
                        assert!(!allow.contains(method), "{method} {path}");
                        let expected = ApiError::MethodNotAllowed {
                            allow: allow.to_vec(),
                        };
                        assert_eq!(error, expected, "{method} {path}");
                    }
                }
            }
        }
        for routed in all_routes() {
            let (method, pattern) = routed.name().split_once(' ').unwrap();
            assert!(
                PATHS
                    .iter()
                    .any(|(path, allow)| *path == pattern && allow.contains(&method)),
                "{method} {pattern} is missing from PATHS"
            );
        }
    }

    #[test]
    fn empty_or_bad_ids_decide_only_after_the_method() {
        assert_eq!(
            route("POST", "/v1/deliveries//retry"),
            Err(ApiError::RouteNotFound)
        );
        assert_eq!(
            route("POST", "/v1/deliveries/nope/retry"),
            Err(ApiError::InvalidId)
        );
        assert_eq!(
            route("PATCH", "/v1/deliveries/nope"),
            Err(ApiError::MethodNotAllowed {
                allow: vec!["GET", "DELETE"]
            })
        );
    }

    #[test]
    fn more_unknown_paths_are_not_found_for_every_method() {
        for path in [
            "",
            "v1/webhooks",
            "//v1/webhooks",
            "/v1/",
            "/v1//",
            "/v1//webhooks",
            "/V1/WEBHOOKS",
            &format!("/v1/deliveries/{ID}/"),
            &format!("/v1/deliveries/{ID}/retry/"),
            &format!("/v1/deliveries/{ID}/retry/x"),
            &format!("/v1/delivery-attempts/{ID}/"),
            "/v1/delivery-attempts/../webhooks",
            "/swagger/index.html",
        ] {
            for method in METHODS.iter().chain(&["FOO"]) {
                assert_eq!(
                    route(method, path),
                    Err(ApiError::RouteNotFound),
                    "{method} {path}"
                );
            }
        }
    }
}
