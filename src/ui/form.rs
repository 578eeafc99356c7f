//! The forms of the dashboard: the body of a `POST` (and the query string of a page, read the
//! same way), decoded with the API's percent-decoding.

use std::io::Read;

use tiny_http::Request;

use super::{Refusal, header_value};

/// Largest form body read; the dashboard's forms are a few hundred bytes.
const FORM_LIMIT: usize = 64 * 1024;

/// A decoded `application/x-www-form-urlencoded` body (or query string): the first value of
/// each name. A pair that is not valid percent-encoded UTF-8 is left out, as if not sent.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes `text`.
    pub(crate) fn parse(text: &str) -> Form {
        let decode = crate::api::query::percent_decode;
        let pairs = text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(key)?, decode(value)?))
            })
            .collect();
        Form { pairs }
    }

    /// The value of `name`, if sent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name` when sent and not empty (an empty field means "not given").
    pub(crate) fn given(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|value| !value.trim().is_empty())
            .map(|value| value.trim().to_string())
    }
}

/// The form a `POST` carries: `application/x-www-form-urlencoded`, at most [`FORM_LIMIT`].
pub(crate) fn read_form(request: &mut Request) -> Result<Form, Refusal> {
    let content_type = header_value(request, "Content-Type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Refusal::Form(
            415,
            "A form must be sent as application/x-www-form-urlencoded.",
        ));
    }
    let too_large = Refusal::Form(413, "The form is larger than any form of the dashboard.");
    if request.body_length().is_some_and(|n| n > FORM_LIMIT) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(FORM_LIMIT as u64 + 1)
        .read_to_end(&mut body);
    match read {
        Ok(_) if body.len() > FORM_LIMIT => Err(too_large),
        Ok(_) => match String::from_utf8(body) {
            Ok(text) => Ok(Form::parse(&text)),
            Err(_) => Err(Refusal::Form(400, "The form is not valid UTF-8.")),
        },
        Err(_) => Err(Refusal::Form(400, "The form could not be read.")),
    }
}
