//! The `.env` file: `KEY=value` lines that fill in what the real environment leaves unset,
//! as the original's godotenv did.
//!
//! A hand parser rather than the dotenvy crate: the format postmand needs is forty lines
//! (optional `export `, `#` comments, single quotes taken literally, double quotes with
//! godotenv's `\n`, `\"` and `\\` escapes), each case tested below, and a dependency
//! would read the file into the process environment, which `Config::from_lookup` avoids.

use std::collections::HashMap;
use std::path::Path;

use super::Error;

/// The variables of the file at `path`; none when it does not exist.
pub(super) fn read(path: &Path) -> Result<HashMap<String, String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(Error::DotEnv {
            line: 0,
            reason: e.to_string(),
        }),
    }
}

/// Parses dotenv text: `KEY=value`, optional `export `, `#` comments, single or double quotes.
fn parse(text: &str) -> Result<HashMap<String, String>, Error> {
    let mut vars = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::DotEnv {
                line: index + 1,
                reason: "expected KEY=value".into(),
            });
        };
        let value = value.trim();
        let unterminated = || Error::DotEnv {
            line: index + 1,
            reason: "unterminated quote".into(),
        };
        let value = match value.chars().next() {
            Some('\'') => match value[1..].find('\'') {
                Some(end) => value[1..1 + end].to_string(),
                None => return Err(unterminated()),
            },
            Some('"') => double_quoted(&value[1..]).ok_or_else(unterminated)?,
            _ => value.split(" #").next().unwrap_or("").trim().to_string(),
        };
        vars.insert(key.trim().to_string(), value);
    }
    Ok(vars)
}

/// The value of a double-quoted string up to its closing quote, with godotenv's escapes;
/// `None` without a closing quote.
fn double_quoted(text: &str) -> Option<String> {
    let mut value = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_comments_and_export() {
        let vars = parse(
            "# comment\nexport A=1\nB='two # not a comment'\nC=\"three\"\nD=four # comment\n\n",
        )
        .unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two # not a comment");
        assert_eq!(vars["C"], "three");
        assert_eq!(vars["D"], "four");
    }

    #[test]
    fn double_quotes_take_godotenv_escapes_and_single_quotes_do_not() {
        let vars = parse("A=\"a\\nb \\\"q\\\" c\\\\d\"\nB='a\\nb'\n").unwrap();
        assert_eq!(vars["A"], "a\nb \"q\" c\\d");
        assert_eq!(vars["B"], "a\\nb");
    }

    #[test]
    fn a_line_without_equals_is_an_error() {
        assert_eq!(
            parse("A=1\nnonsense\n").unwrap_err(),
            Error::DotEnv {
                line: 2,
                reason: "expected KEY=value".into()
            }
        );
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(parse("A=\"open\n").is_err());
        assert!(parse("A='open\n").is_err());
    }

    #[test]
    fn a_missing_file_is_no_variables() {
        assert!(
            read(Path::new("/nonexistent/postmand/.env"))
                .unwrap()
                .is_empty()
        );
    }
}
