//! The dashboard's forms: log in and out, and every action on a webhook or a delivery. Each
//! action runs the API's own step (`api::deliveries::requeue`, `api::webhooks::replace`,
//! `rotate`, `recover_window`) with the API's validation, so a form can do nothing the REST
//! API would refuse, then sends the browser on to the page it changed (303), with a notice.

use maud::html;
use uuid::Uuid;

use super::router::WebhookAction;
use super::session::{self, Keys};
use super::{Ctx, Form, Refusal, Reply, layout};
use crate::api::errors::ApiError;
use crate::api::{self, json};
use crate::store::webhooks;

/// `GET /ui/login`: the form (or, without a token, or with a session, on to the pages).
pub fn login_form(keys: &Keys, ctx: &Ctx) -> Result<Reply, Refusal> {
    let next = Form::parse(&ctx.query).given("next");
    if !keys.login_required() || ctx.session.is_some() {
        return Ok(Reply::see_other(safe_next(next.as_deref())));
    }
    Ok(Reply::page(200, login_page(next.as_deref(), false)))
}

/// `POST /ui/login`: the token in exchange for a session cookie.
pub fn login(keys: &Keys, form: &Form) -> Result<Reply, Refusal> {
    let next = form.given("next");
    if !keys.login_required() {
        return Ok(Reply::see_other(safe_next(next.as_deref())));
    }
    let now = chrono::Utc::now().timestamp();
    match keys
        .issue(now)
        .filter(|_| keys.is_token(form.get("token").unwrap_or("")))
    {
        Some(value) => {
            log::info!("ui-login");
            let mut reply = Reply::see_other(safe_next(next.as_deref()));
            reply.cookie = Some(format!(
                "{}={value}; Path=/ui; Max-Age={}; HttpOnly; SameSite=Strict",
                session::COOKIE,
                session::LIFETIME_SECS
            ));
            Ok(reply)
        }
        None => {
            log::info!("ui-login-refused");
            Ok(Reply::page(401, login_page(next.as_deref(), true)))
        }
    }
}

/// `POST /ui/logout`: the cookie goes (a copy of it stays good until it expires: sessions are
/// not stored, see `session`).
pub fn logout() -> Reply {
    let mut reply = Reply::see_other("/ui/login".to_string());
    reply.cookie = Some(format!(
        "{}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict",
        session::COOKIE
    ));
    reply
}

/// Where to go after logging in: `next` when it is a page of the dashboard written plainly
/// (so no redirect can leave this site), else the overview.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/ui/")
                && !next.contains("//")
                && next
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+:".contains(&b)) =>
        {
            next.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

fn login_page(next: Option<&str>, refused: bool) -> maud::Markup {
    let form = html! {
        form.login method="post" action="/ui/login" {
            @if refused {
                p.notice.bad { "That is not the API token." }
            }
            p { "This postmand has an API token (" code { "POSTMAND_API_TOKEN" } "). Enter it to use the dashboard." }
            input type="hidden" name="next" value=(next.unwrap_or("/ui/"));
            label {
                "API token "
                input type="password" name="token" autocomplete="current-password" required
                    autofocus;
            }
            button type="submit" { "Log in" }
        }
    };
    layout::bare("Log in", form)
}

/// `POST /ui/webhooks/{id}/<action>`.
pub fn webhook(ctx: &Ctx, id: Uuid, action: WebhookAction, form: &Form) -> Result<Reply, Refusal> {
    let done = match action {
        WebhookAction::Activate | WebhookAction::Deactivate => {
            let active = action == WebhookAction::Activate;
            let webhook =
                webhooks::get(&mut *ctx.api.client()?, id)?.ok_or(ApiError::WebhookNotFound)?;
            let mut settings = webhook.settings;
            settings.active = active;
            api::webhooks::replace(ctx.api, id, settings)?;
            if active { "activated" } else { "deactivated" }.to_string()
        }
        WebhookAction::RotateSecret => {
            let secret = form.given("secret_token");
            let previous_valid_for = match form.given("previous_valid_for") {
                None => None,
                Some(text) => Some(text.parse::<i64>().map_err(|_| {
                    ApiError::invalid("previous_valid_for", "must be a whole number of seconds")
                })?),
            };
            let generated = secret.is_none();
            let rotation = json::rotation_of(secret, previous_valid_for)?;
            let webhook = api::webhooks::rotate(ctx.api, id, rotation)?;
            if generated {
                // The one time the new secret is shown: the receiver needs it.
                return Ok(Reply::page(200, super::webhooks::rotated(ctx, &webhook)));
            }
            "rotated".to_string()
        }
        WebhookAction::Recover => {
            let window = json::recovery_of(form.given("since"), form.given("until"))?;
            let recovered = api::webhooks::recover_window(ctx.api, id, &window)?;
            format!(
                "recovered&n={}&more={}",
                recovered.recovered, recovered.more
            )
        }
    };
    Ok(Reply::see_other(format!("/ui/webhooks/{id}?done={done}")))
}

/// `POST /ui/deliveries/{id}/retry`: the API's retry, with its rule (a pending delivery is
/// refused with 409).
pub fn retry(ctx: &Ctx, id: Uuid) -> Result<Reply, Refusal> {
    api::deliveries::requeue(ctx.api, id)?;
    Ok(Reply::see_other(format!(
        "/ui/deliveries/{id}?done=requeued"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_dashboard_paths_are_followed_after_login() {
        for good in [
            "/ui/",
            "/ui/webhooks?active=true&offset=50",
            "/ui/deliveries/abc",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "https://evil.example/ui/",
            "//evil.example/ui/",
            "/ui//evil.example",
            "/v1/webhooks",
            "/ui/\r\nSet-Cookie: x=1",
            "/ui/<script>",
            "/ui\\evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }
}
