//! What every page shares: the shell (head, navigation, log-out form), error pages, and the
//! small pieces pages are made of (times, ages, status badges, the pager, the CSRF field).
//! Every value reaches the HTML through a maud splice, which escapes it; no function here
//! builds markup from strings.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::Ctx;
use crate::model::DeliveryStatus;
use crate::store::Page;

/// Where the stylesheet is served (see `router::Route::Stylesheet`).
pub const STYLESHEET: &str = "/ui/ui.css";

/// A whole page: `title` in the tab and as the heading, `content` below it.
pub fn page(ctx: &Ctx, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · postmand" }
                link rel="stylesheet" href=(STYLESHEET);
            }
            body {
                header.top {
                    a.brand href="/ui/" { "postmand" }
                    nav {
                        a href="/ui/" { "Overview" }
                        a href="/ui/webhooks" { "Webhooks" }
                    }
                    form.find method="get" action="/ui/find" {
                        input type="search" name="id" placeholder="delivery, webhook or attempt id"
                            aria-label="Find by id" size="38";
                        button type="submit" { "Find" }
                    }
                    @if ctx.session.is_some() {
                        form.logout method="post" action="/ui/logout" {
                            (csrf_field(ctx))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page that says why a request was refused.
pub fn error_page(status: u16, title: &str, detail: &str, ctx: Option<&Ctx>) -> Markup {
    let content = html! {
        p.error-status { "HTTP " (status) }
        p.detail { (detail) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    match ctx {
        Some(ctx) => page(ctx, title, content),
        None => bare(title, content),
    }
}

/// A page without navigation: the login form, and errors shown to whoever has no session.
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · postmand" }
                link rel="stylesheet" href=(STYLESHEET);
            }
            body {
                header.top { span.brand { "postmand" } }
                main { h1 { (title) } (content) }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// A time, in UTC to the second, with the full RFC 3339 value as its tooltip.
pub fn time(at: &DateTime<Utc>) -> Markup {
    let full = crate::api::json::format_time(at);
    html! {
        time datetime=(full) title=(full) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// A duration in seconds, in the largest units that keep it short ("45 s", "3 min", "2 h 5 min").
pub fn age(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// How long ago `at` was, from the database's `now`.
pub fn ago(at: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*now - *at).num_milliseconds() as f64 / 1000.0;
    format!("{} ago", age(secs))
}

/// A delivery's status as a coloured badge.
pub fn status_badge(status: DeliveryStatus) -> Markup {
    html! { span.badge.(status.as_str()) { (status.as_str()) } }
}

/// A count with thousands separated ("2,000,000").
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A success rate as a percentage ("100%", "97.5%").
pub fn percent(rate: f64) -> String {
    let percent = rate * 100.0;
    if percent >= 99.95 {
        "100%".to_string()
    } else {
        format!("{percent:.1}%")
    }
}

/// "Newer" and "older" links of a list shown `page` at a time, newest first; `query` is the
/// page's query string, whose other parameters (the filters) the links keep. `shown` rows are
/// on this page; a full page means there may be more.
pub fn pager(path: &str, query: &str, page: Page, shown: usize) -> Markup {
    let full = i64::try_from(shown).is_ok_and(|shown| shown >= page.limit);
    let newer = (page.offset > 0).then(|| {
        let offset = (page.offset - page.limit).max(0);
        format!(
            "{path}?{}",
            with_param(query, "offset", &offset.to_string())
        )
    });
    let older = full.then(|| {
        let offset = page.offset + page.limit;
        format!(
            "{path}?{}",
            with_param(query, "offset", &offset.to_string())
        )
    });
    html! {
        nav.pager {
            @if let Some(href) = newer { a rel="prev" href=(href) { "← Newer" } }
            @if shown > 0 {
                span { "rows " (page.offset + 1) "–" (page.offset + shown as i64) }
            }
            @if let Some(href) = older { a rel="next" href=(href) { "Older →" } }
        }
    }
}

/// `query` with `key` set to `value` (percent-encoded) and any earlier `key` (and the notice
/// of an action, which belongs to one view only) left out.
pub fn with_param(query: &str, key: &str, value: &str) -> String {
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            name != key && name != "done" && name != "n" && name != "more"
        })
        .map(str::to_string)
        .collect();
    pairs.push(format!("{key}={}", encode(value)));
    pairs.join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The query string without parameters whose value is empty: a filter form sends every field,
/// and an empty one means "no filter", where the API's parser would call it malformed.
pub fn drop_empty(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            pair.split_once('=')
                .is_none_or(|(_, value)| !value.is_empty())
        })
        .filter(|pair| !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_stay_short() {
        assert_eq!(age(-3.0), "0 s");
        assert_eq!(age(45.2), "45 s");
        assert_eq!(age(185.0), "3 min");
        assert_eq!(age(7500.0), "2 h 5 min");
        assert_eq!(age(3.0 * 86_400.0 + 7200.0), "3 d 2 h");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(2_000_000), "2,000,000");
        assert_eq!(count(-12_345), "-12,345");
    }

    #[test]
    fn percentages_round_to_a_tenth() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.9996), "100%");
        assert_eq!(percent(0.975), "97.5%");
        assert_eq!(percent(0.0), "0.0%");
    }

    #[test]
    fn paging_links_keep_the_filters() {
        assert_eq!(
            with_param(
                "status=failed&offset=50&limit=50&done=requeued",
                "offset",
                "100"
            ),
            "status=failed&limit=50&offset=100"
        );
        assert_eq!(with_param("", "offset", "0"), "offset=0");
    }

    #[test]
    fn empty_filters_are_dropped() {
        assert_eq!(
            drop_empty("status=&created_at.gte=2026-01-01T00%3A00%3A00Z&limit=&x"),
            "created_at.gte=2026-01-01T00%3A00%3A00Z&x"
        );
    }

    #[test]
    fn encoding_leaves_only_unreserved_characters() {
        assert_eq!(encode("a b/c?d=é&<"), "a%20b%2Fc%3Fd%3D%C3%A9%26%3C");
    }

    #[test]
    fn the_pager_offers_only_pages_that_exist() {
        let first = Page {
            limit: 50,
            offset: 0,
        };
        let html = pager("/ui/webhooks", "active=true", first, 50).into_string();
        assert!(html.contains(r#"href="/ui/webhooks?active=true&amp;offset=50""#));
        assert!(!html.contains("Newer"));
        let last = Page {
            limit: 50,
            offset: 75,
        };
        let html = pager("/ui/webhooks", "offset=75", last, 3).into_string();
        assert!(html.contains("rows 76–78"));
        assert!(html.contains(r#"href="/ui/webhooks?offset=25""#));
        assert!(!html.contains("Older"));
    }
}
