//! The JSON Schema `pattern` of each text rule of the API, for the OpenAPI document
//! (`openapi.rs`): each names exactly the texts its validator accepts, so a schema-driven fuzzer
//! finds no schema-valid request refused and no schema-invalid one accepted. A pattern is an
//! ECMA-262 regular expression; these use only what every engine reads alike (classes,
//! groups, counted repetition, `^` and `$` around the whole). The tests below run each against
//! its validator. The URL's pattern lives beside its validator (`url.rs`).

/// A UUID in a form `Uuid::parse_str` takes, with `$v` as its version digit: 32 hex digits,
/// hyphenated, hyphenated in braces, or hyphenated after `urn:uuid:` (any case), hex digits in
/// any case.
macro_rules! uuid_pattern {
    ($v:literal) => {
        concat!(
            "^(?:[0-9A-Fa-f]{12}",
            $v,
            "[0-9A-Fa-f]{19}|",
            hyphenated!($v),
            "|\\{",
            hyphenated!($v),
            "\\}|[Uu][Rr][Nn]:[Uu][Uu][Ii][Dd]:",
            hyphenated!($v),
            ")$"
        )
    };
}

/// `8-4-4-4-12` hex digits, with `$v` as the version digit (the third group's first).
macro_rules! hyphenated {
    ($v:literal) => {
        concat!(
            "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-",
            $v,
            "[0-9A-Fa-f]{3}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
        )
    };
}

/// A path id or a UUID filter: any version (`router::id`, `Query::uuid`).
pub const UUID: &str = uuid_pattern!("[0-9A-Fa-f]");

/// A delivery's `webhook_id`: version 4 only (`json::uuid_v4`).
pub const UUID_V4: &str = uuid_pattern!("4");

/// Text without NUL, which PostgreSQL cannot store (names, payloads).
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// A content type: printable ASCII or tab, at least one (`json::is_header_value`).
pub const CONTENT_TYPE: &str = "^[\\t -~]+$";

/// A secret token (its length is `maxLength`'s): no NUL, and after a `whsec_` prefix canonical
/// padded base64 (`model::whsec_key`: the standard alphabet, and the bits the last character
/// carries past the data are zero). The second branch is any text not starting with `whsec_`,
/// spelt without lookahead: it leaves the prefix at some character, or is a prefix of it.
pub const SECRET_TOKEN: &str = concat!(
    "^(?:whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?",
    "|(?:w(?:h(?:s(?:e(?:c[^_\\u0000]|[^c\\u0000])|[^e\\u0000])|[^s\\u0000])|[^h\\u0000])|[^w\\u0000])[^\\u0000]*",
    "|(?:w(?:h(?:s(?:ec?)?)?)?)?)$"
);

/// An `Idempotency-Key` header: 1-255 printable ASCII characters (`idempotency::is_valid_key`).
/// HTTP drops the spaces around a header's value, so the value cannot start or end with one.
pub const IDEMPOTENCY_KEY: &str = "^[!-~](?:[ -~]{0,253}[!-~])?$";

/// `seeds` and `count` edits of them (each 1 to `max_edits + 1` insertions, deletions or
/// replacements from `alphabet`), drawn by SplitMix64 from a fixed seed, so every run tests
/// the same texts: the property tests of the patterns and of the URL validator.
#[cfg(test)]
pub(crate) fn mutations(
    seeds: &[String],
    alphabet: &str,
    count: usize,
    max_edits: usize,
) -> Vec<String> {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut state: u64 = 0x5EED;
    let mut next = move |n: usize| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let mut texts = seeds.to_vec();
    for _ in 0..count {
        let mut chars: Vec<char> = seeds[next(seeds.len())].chars().collect();
        for _ in 0..=next(max_edits) {
            let at = next(chars.len() + 1);
            match next(3) {
                0 => chars.insert(at, alphabet[next(alphabet.len())]),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => chars[at] = alphabet[next(alphabet.len())],
                _ => {}
            }
        }
        texts.push(chars.into_iter().collect());
    }
    texts
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;
    use crate::api::idempotency::is_valid_key;
    use crate::api::json::{EVENT_TYPE_PATTERN, is_event_type, is_header_value, uuid_v4};

    const ID: &str = "a6e9a525-ac5a-488c-b118-bd7327ce6d8d";

    /// `seeds` and thousands of edits of them (SplitMix64, fixed seed), each judged by `pattern`
    /// and by `valid`: they must agree. Returns how many were valid.
    fn agree(
        pattern: &str,
        seeds: &[String],
        alphabet: &str,
        valid: impl Fn(&str) -> bool,
    ) -> usize {
        let regex = Regex::new(pattern).expect("pattern compiles");
        let texts = mutations(seeds, alphabet, 3000, 2);
        let mut valid_seen = 0;
        for text in &texts {
            let is_valid = valid(text);
            valid_seen += usize::from(is_valid);
            assert_eq!(regex.is_match(text), is_valid, "{pattern} on {text:?}");
        }
        valid_seen
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uuid_patterns_take_every_form_parse_str_takes() {
        let v1 = "e3e70682-c209-1cac-a29f-6fbed82c07cd";
        let seeds: Vec<String> = [ID, v1]
            .iter()
            .flat_map(|id| {
                [
                    id.to_string(),
                    id.to_uppercase(),
                    id.replace('-', ""),
                    format!("{{{id}}}"),
                    format!("{{{}}}", id.replace('-', "")),
                    format!("urn:uuid:{id}"),
                    format!("URN:Uuid:{id}"),
                    format!("urn:uuid:{}", id.replace('-', "")),
                ]
            })
            .collect();
        let alphabet = "0123456789abcdefABCDEFgxz-{}:4 ";
        let any = agree(UUID, &seeds, alphabet, |t| uuid::Uuid::parse_str(t).is_ok());
        let v4 = agree(UUID_V4, &seeds, alphabet, |t| uuid_v4(t).is_some());
        assert!(any > 300 && v4 > 100, "{any} UUIDs, {v4} of version 4");
    }

    #[test]
    fn secret_token_pattern_is_the_whsec_rule() {
        let seeds = strings(&[
            "",
            "w",
            "whsec",
            "whsec_",
            "whsec_QQ==",
            "whsec_QR==",
            "whsec_QUI=",
            "whsec_QUJD",
            "whsec_QUJDRA==",
            "whsec_+/+/",
            "my-secret-token",
            "whse_x",
            "WHSEC_x",
            "caf\u{e9}",
        ]);
        let valid =
            |t: &str| !t.contains('\0') && !matches!(crate::model::whsec_key(t), Some(Err(_)));
        let seen = agree(
            SECRET_TOKEN,
            &seeds,
            "whsec_QRAgwEIM+/=0x\u{0}\u{e9} ",
            valid,
        );
        assert!(seen > 500, "{seen} valid tokens");
    }

    #[test]
    fn header_patterns_are_their_validators() {
        let keys = strings(&[
            "a",
            "order 42/retry:1",
            &"k".repeat(255),
            &"k".repeat(254),
            "~ ~",
        ]);
        let seen = agree(IDEMPOTENCY_KEY, &keys, "ak ~!\t\u{7f}\u{0}\u{e9}", |t| {
            is_valid_key(t) && !t.starts_with(' ') && !t.ends_with(' ')
        });
        assert!(seen > 500, "{seen} valid keys");
        let types = strings(&["application/json", "text/plain; charset=utf-8", "a\tb"]);
        let seen = agree(CONTENT_TYPE, &types, "a/ ;=\t\r\n\u{7f}\u{0}\u{e9}", |t| {
            !t.is_empty() && is_header_value(t)
        });
        assert!(seen > 500, "{seen} valid content types");
    }

    #[test]
    fn event_type_and_no_nul_patterns_are_their_validators() {
        let types = strings(&[
            "invoice.paid",
            "a",
            &"x".repeat(128),
            &"x".repeat(127),
            "A-Z_0.9",
        ]);
        let seen = agree(
            EVENT_TYPE_PATTERN,
            &types,
            "aZ09._- /\u{0}\u{e9}",
            is_event_type,
        );
        assert!(seen > 500, "{seen} valid event types");
        let texts = strings(&["", "payload", "caf\u{e9}", "{\"a\": 1}"]);
        let seen = agree(NO_NUL, &texts, "a\u{0}\u{e9}\n", |t| !t.contains('\0'));
        assert!(seen > 500, "{seen} texts without NUL");
    }
}
