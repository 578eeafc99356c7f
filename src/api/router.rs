//! The route table of the whole API: (method, path) to a [`Route`], with ids parsed here so a
//! handler only ever sees a `Uuid`. Pure: no I/O, unit-tested below.
//!
//! A bad id is the original's 404 code 2, decided before any handler or body read. A known path
//! with another method is a 405 naming the allowed ones. Collection paths match with or without
//! a trailing slash, as in the original; an item path with one is unknown.

use uuid::Uuid;

use super::errors::ApiError;

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
        }
    }
}

/// The path patterns and their methods, for 405s and for the OpenAPI cross-check.
pub const PATHS: &[(&str, &[&str])] = &[
    ("/v1/webhooks", &["GET", "POST"]),
    ("/v1/webhooks/{webhook_id}", &["GET", "PUT", "DELETE"]),
    ("/v1/deliveries", &["GET", "POST"]),
    ("/v1/deliveries/{delivery_id}", &["GET", "DELETE"]),
    ("/v1/deliveries/{delivery_id}/retry", &["POST"]),
    ("/v1/delivery-attempts", &["GET"]),
    ("/v1/delivery-attempts/{delivery_attempt_id}", &["GET"]),
];

/// Which route serves `method path` (the path without its query string).
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.split('/').collect();
    // "/v1/webhooks" -> ["", "v1", "webhooks"]; a trailing slash adds one empty segment.
    let segments: &[&str] = match segments.as_slice() {
        ["", "v1", collection, ""] => &["", "v1", collection],
        other => other,
    };
    let (pattern, allowed, id) = match segments {
        ["", "v1", "webhooks"] => (0, PATHS[0].1, None),
        ["", "v1", "webhooks", id] => (1, PATHS[1].1, Some(*id)),
        ["", "v1", "deliveries"] => (2, PATHS[2].1, None),
        ["", "v1", "deliveries", id] => (3, PATHS[3].1, Some(*id)),
        ["", "v1", "deliveries", id, "retry"] => (4, PATHS[4].1, Some(*id)),
        ["", "v1", "delivery-attempts"] => (5, PATHS[5].1, None),
        ["", "v1", "delivery-attempts", id] => (6, PATHS[6].1, Some(*id)),
        _ => return Err(ApiError::RouteNotFound),
    };
    if !allowed.contains(&method) {
        return Err(ApiError::MethodNotAllowed { allow: allowed });
    }
    let id = match id {
        Some("") => return Err(ApiError::RouteNotFound),
        Some(text) => Uuid::parse_str(text).map_err(|_| ApiError::InvalidId)?,
        None => Uuid::nil(),
    };
    Ok(match (pattern, method) {
        (0, "GET") => Route::ListWebhooks,
        (0, _) => Route::CreateWebhook,
        (1, "GET") => Route::GetWebhook(id),
        (1, "PUT") => Route::UpdateWebhook(id),
        (1, _) => Route::DeleteWebhook(id),
        (2, "GET") => Route::ListDeliveries,
        (2, _) => Route::CreateDelivery,
        (3, "GET") => Route::GetDelivery(id),
        (3, _) => Route::DeleteDelivery(id),
        (4, _) => Route::RetryDelivery(id),
        (5, _) => Route::ListAttempts,
        _ => Route::GetAttempt(id),
    })
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
    }

    #[test]
    fn wrong_method_is_405_with_allowed_methods() {
        assert_eq!(
            route("PATCH", &format!("/v1/webhooks/{ID}")),
            Err(ApiError::MethodNotAllowed {
                allow: &["GET", "PUT", "DELETE"]
            })
        );
        assert_eq!(
            route("HEAD", "/v1/delivery-attempts"),
            Err(ApiError::MethodNotAllowed { allow: &["GET"] })
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
}
