//! Raw request and response dumps for the attempt row: request or status line, headers, blank
//! line, body. Whatever arrives on the wire, a dump is valid UTF-8 without NUL and at most
//! `cap` bytes plus a one-line note saying it was cut, so the attempt row can always be stored
//! (the original's unstorable dumps made a delivery loop for ever: behaviour spec 4.7).

/// Text from arbitrary bytes: invalid UTF-8 and NUL become U+FFFD.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

/// A header line's text: CR and LF become spaces so one header stays one line.
fn header_text(value: &[u8]) -> String {
    text(value).replace(['\r', '\n'], " ")
}

/// Builds `first_line`, the headers and the body, cut to `cap` bytes. `body_complete` is false
/// when the body was already cut while reading (its full length is unknown).
pub fn dump(
    first_line: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    body_complete: bool,
    cap: usize,
) -> String {
    let mut out = String::with_capacity(cap.min(body.len() + 512));
    out.push_str(&header_text(first_line.as_bytes()));
    out.push_str("\r\n");
    for (name, value) in headers {
        out.push_str(&header_text(name.as_bytes()));
        out.push_str(": ");
        out.push_str(&header_text(value));
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&text(body));
    if out.len() > cap || !body_complete {
        let mut end = cap.min(out.len());
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(&format!("\n[postmand: dump cut at {cap} bytes]"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_dump_shape() {
        let headers = vec![("Content-Type".to_string(), b"application/json".to_vec())];
        assert_eq!(
            dump("POST /post HTTP/1.1", &headers, b"{}", true, 1024),
            "POST /post HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}"
        );
    }

    #[test]
    fn nul_and_invalid_utf8_become_replacement_characters() {
        let dumped = dump("HTTP/1.1 200 OK", &[], b"a\0b\xff\xfec", true, 1024);
        assert!(!dumped.contains('\0'));
        assert!(dumped.ends_with("a\u{FFFD}b\u{FFFD}\u{FFFD}c"));
    }

    #[test]
    fn long_dumps_are_cut_with_a_note() {
        let body = "é".repeat(100);
        let dumped = dump("HTTP/1.1 200 OK", &[], body.as_bytes(), true, 51);
        assert!(dumped.ends_with("\n[postmand: dump cut at 51 bytes]"));
        assert!(dumped.len() <= 51 + "\n[postmand: dump cut at 51 bytes]".len());
    }

    #[test]
    fn header_values_stay_on_one_line() {
        let headers = vec![("X".to_string(), b"a\r\nInjected: 1".to_vec())];
        assert_eq!(
            dump("HTTP/1.1 200 OK", &headers, b"", true, 1024),
            "HTTP/1.1 200 OK\r\nX: a  Injected: 1\r\n\r\n"
        );
    }
}
