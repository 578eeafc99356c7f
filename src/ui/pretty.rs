//! Payloads on the delivery page: pretty-printed when they are JSON, as they came otherwise.
//!
//! The text is re-indented token by token rather than parsed into a map and printed again:
//! keys keep their order (serde_json's map sorts them), a repeated key stays, and numbers keep
//! their digits, so the page shows what the receiver got, only laid out. The result is text;
//! the page escapes it like any other.

/// Deepest nesting indented; deeper JSON is shown as it came.
const MAX_DEPTH: usize = 32;

/// `text` indented by two spaces per level, or `None` when it is not one JSON value, or when
/// indenting would blow it up (nesting deeper than [`MAX_DEPTH`], or more than four times
/// its size): a payload must not make its page huge.
pub fn json(text: &str) -> Option<String> {
    // Valid JSON only; the loop below then only has to tell strings from structure.
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let budget = text.len().saturating_mul(4).saturating_add(4096);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                out.push(c);
                if chars.peek().is_some_and(|&next| next == '}' || next == ']') {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
                if out.len() > budget {
                    return None;
                }
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_key_order_and_numbers() {
        let text = r#"{"z":1,"a":[1.50,{"k":"v, \"q\" {[:"}],"e":{},"l":[ ],"big":123456789012345678901234567890}"#;
        assert_eq!(
            json(text).unwrap(),
            "{\n  \"z\": 1,\n  \"a\": [\n    1.50,\n    {\n      \"k\": \"v, \\\"q\\\" {[:\"\n    }\n  ],\n  \
             \"e\": {},\n  \"l\": [],\n  \"big\": 123456789012345678901234567890\n}"
        );
    }

    #[test]
    fn repeated_keys_and_spacing_are_handled() {
        assert_eq!(
            json(" {\"a\" : 1 ,\n \"a\":2} ").unwrap(),
            "{\n  \"a\": 1,\n  \"a\": 2\n}"
        );
        assert_eq!(json("\"plain <b>\"").unwrap(), "\"plain <b>\"");
        assert_eq!(json("42").unwrap(), "42");
    }

    #[test]
    fn deep_or_wide_json_stays_as_it_came() {
        let deep_enough = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(json(&deep_enough).is_some());
        // 31 levels of indent before each of many short items: far over four times the size.
        let wide = format!(
            "{}{}{}",
            "[".repeat(31),
            "1,".repeat(1000) + "1",
            "]".repeat(31)
        );
        assert_eq!(json(&wide), None);
    }

    #[test]
    fn anything_else_is_shown_as_it_came() {
        for text in [
            "",
            "<script>alert(1)</script>",
            "{\"a\":1",
            "{\"a\":1} x",
            "{'a':1}",
            &format!("{}1{}", "[".repeat(33), "]".repeat(33)),
        ] {
            assert_eq!(json(text), None, "{text}");
        }
    }
}
