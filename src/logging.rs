//! The logger: env_logger with postmand's filter, as text or as one JSON object per line.
//!
//! Every line of postmand is `event key=value key=value ...` (values with spaces are quoted, and
//! `error=` comes last and takes the rest of the line). In JSON each pair becomes a field, so a
//! log shipper can index `delivery_id` or `webhook_id` without parsing text:
//!
//! ```text
//! {"time":"2026-12-01T10:00:00.123Z","level":"INFO","target":"postmand::api::deliveries","message":"delivery-created","delivery_id":"...","webhook_id":"..."}
//! ```

use std::io::Write;

use serde_json::Value;

use crate::config::Config;

/// Starts the process's logger. `RUST_LOG`, when set, replaces the level filter; the driver's
/// caps below apply whatever it says.
pub fn init(config: &Config) {
    // tiny_http's debug lines (one per connection) are noise; its warnings are the patched
    // accept loop's (vendor/tiny_http/PATCHES.md).
    let tiny_http = if config.log_level == "error" {
        "error"
    } else {
        "warn"
    };
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{},tiny_http={tiny_http}", config.log_level));
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
    // The database driver logs every statement with its parameters at debug: secret tokens,
    // payloads, signatures. Capped after the filter, so no RUST_LOG can lift it.
    builder
        .filter_module("tokio_postgres", log::LevelFilter::Info)
        .filter_module("postgres", log::LevelFilter::Info);
    if config.log_json {
        builder.format(|out, record| {
            let line = json_line(
                &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                record.level().as_str(),
                record.target(),
                &record.args().to_string(),
            );
            writeln!(out, "{line}")
        });
    }
    builder.init();
}

/// One JSON object for a log line: time, level, target, then the event as `message` and its
/// `key=value` pairs as fields. A line that is not `event key=value ...` keeps its whole text
/// as `message`.
pub fn json_line(time: &str, level: &str, target: &str, text: &str) -> String {
    let (message, fields) = split_event(text).unwrap_or_else(|| (text.to_string(), Vec::new()));
    // Written field by field so time, level, target and message lead every line (a
    // serde_json::Map would sort them among the fields).
    let mut line = String::with_capacity(96 + text.len());
    let mut seen: Vec<String> = ["time", "level", "target", "message"]
        .map(String::from)
        .into();
    for (key, value) in [
        ("time", time),
        ("level", level),
        ("target", target),
        ("message", &message),
    ] {
        push_field(&mut line, key, value);
    }
    for (key, value) in &fields {
        // A field never overwrites another: `level=x` becomes `field_level`.
        let key = if seen.contains(key) {
            format!("field_{key}")
        } else {
            key.clone()
        };
        push_field(&mut line, &key, value);
        seen.push(key);
    }
    line.push('}');
    line
}

fn push_field(line: &mut String, key: &str, value: &str) {
    line.push(if line.is_empty() { '{' } else { ',' });
    line.push_str(&Value::from(key).to_string());
    line.push(':');
    line.push_str(&Value::from(value).to_string());
}

/// Splits `event key=value key="quoted value" error=rest of the line`, or `None` when the text
/// does not have that shape.
fn split_event(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let (event, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    if event.is_empty() || event.contains('=') || !event.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let event = event.trim_end_matches(':');
    let mut fields = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some((event.to_string(), fields));
        }
        let (key, after) = rest.split_once('=')?;
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return None;
        }
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            unquote(quoted)?
        } else if key == "error" {
            (after.to_string(), "")
        } else {
            let (value, remainder) = after.split_once(' ').unwrap_or((after, ""));
            (value.to_string(), remainder)
        };
        fields.push((key.to_string(), value));
        rest = remainder;
    }
}

/// Reads a quoted value up to its closing quote, undoing `\"` and `\\` (a `{:?}` string's
/// escapes); the text after the quote is returned with it.
fn unquote(quoted: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Value {
        serde_json::from_str(&json_line("t", "INFO", "postmand", text)).unwrap()
    }

    #[test]
    fn pairs_become_fields_and_error_takes_the_rest() {
        let line = parsed(
            "worker-delivery-attempt-failed delivery_id=d1 webhook_id=w1 reason=\"timed out\" \
             error=Post \"http://h:1\": connection refused a=b",
        );
        assert_eq!(line["message"], "worker-delivery-attempt-failed");
        assert_eq!(line["delivery_id"], "d1");
        assert_eq!(line["webhook_id"], "w1");
        assert_eq!(line["reason"], "timed out");
        assert_eq!(line["error"], "Post \"http://h:1\": connection refused a=b");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "postmand");
        assert_eq!(line["time"], "t");
    }

    #[test]
    fn free_text_stays_whole_and_fields_never_overwrite() {
        for text in ["signal 15: shutting down", "", "a thread panicked addr="] {
            let line = parsed(text);
            assert_eq!(line["message"], text, "{text}");
        }
        let line = parsed("create-writer-panicked: its batch answered 503");
        assert_eq!(
            line["message"],
            "create-writer-panicked: its batch answered 503"
        );
        let line = parsed("odd level=x target=y");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["field_level"], "x");
        assert_eq!(line["field_target"], "y");
    }

    #[test]
    fn quoted_values_keep_their_escaped_quotes_and_keys_keep_their_order() {
        let text = r#"attempt delivery_id=d error="Post \"http://h:1\": refused" after=1"#;
        let line = json_line("t", "INFO", "x", text);
        assert!(
            line.starts_with(r#"{"time":"t","level":"INFO","target":"x","message":"attempt","#),
            "{line}"
        );
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["error"], r#"Post "http://h:1": refused"#);
        assert_eq!(value["after"], "1");
    }

    #[test]
    fn every_line_is_one_line_of_valid_json() {
        let text = "event error=line one\nline \"two\"\t\u{7}";
        let line = json_line("t", "WARN", "x", text);
        assert!(!line.contains('\n'));
        assert_eq!(parsed(text)["error"], "line one\nline \"two\"\t\u{7}");
    }
}
