//! Swagger UI under `/swagger`: our page (`index.html`) pointing the bundle at our OpenAPI
//! document (`doc.json`, from `openapi`), and the two files of Swagger UI 5 it loads. Those come
//! from the release zip that `utoipa-swagger-ui-vendored` compiles in, read out once on first
//! use, so the page needs no network at build or run time. `/swagger` and `/swagger/`
//! redirect to the page; any other path under `/swagger/` is no file of ours (the router's 404).
//!
//! The page turns configuration from the address bar off: `?url=` or `?configUrl=` could
//! otherwise make the page show, and send "Try it out" requests for, a document from anywhere.
//! See: <https://nvd.nist.gov/vuln/detail/CVE-2021-46708>

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use super::openapi;

/// Where `/swagger` and `/swagger/` send the browser.
pub const INDEX_PATH: &str = "/swagger/index.html";

/// Our page. `queryConfigEnabled` is already false by default in Swagger UI 5; we say it so
/// that no later default can turn it on. `validatorUrl: null` keeps the page from asking a
/// public validator about our document. Once rendered, the page notes the version of Swagger
/// UI that drew it on `<html>` (scripts/check-swagger-ui.sh reads it).
const INDEX_HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>postmand API</title>
<link rel="stylesheet" type="text/css" href="./swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="./swagger-ui-bundle.js" charset="UTF-8"></script>
<script>
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "./doc.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    queryConfigEnabled: false,
    validatorUrl: null,
    onComplete: function () {
      var ui = window.versions && window.versions.swaggerUI;
      document.documentElement.setAttribute("data-swagger-ui-version", ui ? ui.version : "");
    }
  });
};
</script>
</body>
</html>
"##;

/// What a `GET` of a path under `/swagger` answers.
#[derive(Debug)]
pub enum Swagger {
    /// `/swagger` or `/swagger/`: a redirect to [`INDEX_PATH`].
    Redirect,
    /// One of our files, with its content type.
    File {
        /// The `Content-Type` header.
        content_type: &'static str,
        /// The file.
        body: Cow<'static, [u8]>,
    },
}

/// The answer to `GET path`, or `None` when `path` is no file of ours. Only the exact names
/// below match, so no path reaches anything else (`../Cargo.toml` is just an unknown name).
pub fn answer(path: &str) -> Option<Swagger> {
    let file = |content_type, body| Some(Swagger::File { content_type, body });
    match path {
        "/swagger" | "/swagger/" => Some(Swagger::Redirect),
        "/swagger/index.html" => file(
            "text/html; charset=utf-8",
            Cow::Borrowed(INDEX_HTML.as_bytes()),
        ),
        "/swagger/doc.json" => file(
            "application/json; charset=utf-8",
            Cow::Owned(openapi::document().to_string().into_bytes()),
        ),
        "/swagger/swagger-ui.css" => file(
            "text/css; charset=utf-8",
            Cow::Borrowed(dist()?.css.as_slice()),
        ),
        "/swagger/swagger-ui-bundle.js" => file(
            "application/javascript; charset=utf-8",
            Cow::Borrowed(dist()?.bundle.as_slice()),
        ),
        _ => None,
    }
}

/// The files of Swagger UI's `dist/` folder that the page loads.
struct Dist {
    bundle: Vec<u8>,
    css: Vec<u8>,
}

/// The two files, read from the zip on first use. A zip we cannot read (a crate update that
/// changed its layout; a unit test reads it on every run) logs one error, and the files are 404s.
fn dist() -> Option<&'static Dist> {
    static DIST: OnceLock<Option<Dist>> = OnceLock::new();
    DIST.get_or_init(|| {
        let zip = utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED;
        let read = || -> Result<Dist, ZipError> {
            Ok(Dist {
                bundle: unzip(zip, "dist/swagger-ui-bundle.js")?,
                css: unzip(zip, "dist/swagger-ui.css")?,
            })
        };
        read()
            .inspect_err(|e| log::error!("swagger-ui-unreadable error=\"{e}\""))
            .ok()
    })
    .as_ref()
}

/// Why a file could not be read from a zip archive.
#[derive(Debug, PartialEq, Eq)]
enum ZipError {
    /// No end-of-central-directory record: not a zip archive, or cut short.
    NotZip,
    /// A record or a file's data runs past the end of the archive, or a record is not where
    /// the directory says.
    Truncated,
    /// No entry has this name below the archive's top folder.
    NotFound(String),
    /// The entry is compressed with a method other than stored (0) or deflate (8).
    Method(u16),
    /// The deflate data is broken, or does not inflate to the size the directory gives.
    Inflate,
}

impl fmt::Display for ZipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZipError::NotZip => write!(f, "not a zip archive: no end of central directory"),
            ZipError::Truncated => write!(f, "zip archive truncated"),
            ZipError::NotFound(name) => write!(f, "no {name} in the zip archive"),
            ZipError::Method(method) => write!(f, "zip compression method {method} unsupported"),
            ZipError::Inflate => write!(f, "zip entry does not inflate to its size"),
        }
    }
}

const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const DIRECTORY_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

/// The bytes of the entry `<top folder>/<name>` of the zip archive `zip`, whatever the top
/// folder is called (the release zip's is `swagger-ui-<version>`). Only what the release zip
/// needs: no ZIP64, no encryption; names compare exactly, byte for byte.
fn unzip(zip: &[u8], name: &str) -> Result<Vec<u8>, ZipError> {
    let u16_at = |at: usize| {
        let bytes = zip.get(at..at + 2).and_then(|b| b.try_into().ok());
        bytes.map(u16::from_le_bytes).ok_or(ZipError::Truncated)
    };
    let u32_at = |at: usize| {
        let bytes = zip.get(at..at + 4).and_then(|b| b.try_into().ok());
        bytes.map(u32::from_le_bytes).ok_or(ZipError::Truncated)
    };
    // The record is the last 22 bytes, unless an archive comment (at most 65535 bytes) follows.
    let last = zip.len().checked_sub(22).ok_or(ZipError::NotZip)?;
    let end = (last.saturating_sub(0xFFFF)..=last)
        .rev()
        .find(|&at| u32_at(at) == Ok(END_OF_DIRECTORY))
        .ok_or(ZipError::NotZip)?;
    let entries = u16_at(end + 10)?;
    let mut at = u32_at(end + 16)? as usize;
    for _ in 0..entries {
        if u32_at(at)? != DIRECTORY_ENTRY {
            return Err(ZipError::Truncated);
        }
        let method = u16_at(at + 10)?;
        let packed_size = u32_at(at + 20)? as usize;
        let size = u32_at(at + 24)? as usize;
        let name_len = usize::from(u16_at(at + 28)?);
        let extra_len = usize::from(u16_at(at + 30)?);
        let comment_len = usize::from(u16_at(at + 32)?);
        let local = u32_at(at + 42)? as usize;
        let entry_name = zip
            .get(at + 46..at + 46 + name_len)
            .ok_or(ZipError::Truncated)?;
        at += 46 + name_len + extra_len + comment_len;
        let below_top = entry_name
            .iter()
            .position(|&b| b == b'/')
            .map(|slash| &entry_name[slash + 1..]);
        if below_top != Some(name.as_bytes()) {
            continue;
        }
        if u32_at(local)? != LOCAL_HEADER {
            return Err(ZipError::Truncated);
        }
        let data_at =
            local + 30 + usize::from(u16_at(local + 26)?) + usize::from(u16_at(local + 28)?);
        let data = zip
            .get(data_at..data_at + packed_size)
            .ok_or(ZipError::Truncated)?;
        return match method {
            0 if data.len() == size => Ok(data.to_vec()),
            0 => Err(ZipError::Inflate),
            8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, size)
                .ok()
                .filter(|bytes| bytes.len() == size)
                .ok_or(ZipError::Inflate),
            other => Err(ZipError::Method(other)),
        };
    }
    Err(ZipError::NotFound(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> (&'static str, Vec<u8>) {
        match answer(path) {
            Some(Swagger::File { content_type, body }) => (content_type, body.into_owned()),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn swagger_files_are_served_from_the_binary() {
        let (content_type, page) = file("/swagger/index.html");
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert_eq!(page, INDEX_HTML.as_bytes());
        let (content_type, doc) = file("/swagger/doc.json");
        assert_eq!(content_type, "application/json; charset=utf-8");
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc, openapi::document());
        let (content_type, css) = file("/swagger/swagger-ui.css");
        assert_eq!(content_type, "text/css; charset=utf-8");
        assert!(css.starts_with(b".swagger-ui"), "{:?}", &css[..40]);
        let (content_type, bundle) = file("/swagger/swagger-ui-bundle.js");
        assert_eq!(content_type, "application/javascript; charset=utf-8");
        assert!(bundle.len() > 1_000_000, "{}", bundle.len());
    }

    #[test]
    fn swagger_bundle_is_swagger_ui_5() {
        let zip = utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED;
        let package = unzip(zip, "package.json").unwrap();
        let package: serde_json::Value = serde_json::from_slice(&package).unwrap();
        assert_eq!(package["name"], "swagger-ui");
        let version = package["version"].as_str().unwrap();
        assert!(version.starts_with("5."), "{version}");
        let bundle = String::from_utf8(file("/swagger/swagger-ui-bundle.js").1).unwrap();
        assert!(bundle.contains(&format!("\"{version}\"")), "{version}");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("Swagger UI {version} release")),
            "README.md names another Swagger UI version than {version}"
        );
    }

    #[test]
    fn swagger_page_turns_query_config_off_and_loads_our_document() {
        for option in [
            "url: \"./doc.json\",",
            "queryConfigEnabled: false,",
            "validatorUrl: null,",
        ] {
            assert!(INDEX_HTML.contains(option), "{option}");
        }
        assert!(!INDEX_HTML.contains("configUrl"));
    }

    #[test]
    fn swagger_root_redirects_and_other_paths_are_none() {
        for path in ["/swagger", "/swagger/"] {
            assert!(matches!(answer(path), Some(Swagger::Redirect)), "{path}");
        }
        for path in [
            "/swagger//",
            "/swagger/index.htm",
            "/swagger/nope.js",
            "/swagger/../Cargo.toml",
            "/swagger/%2e%2e/Cargo.toml",
            "/swagger/dist/swagger-ui-bundle.js",
            "/swagger/swagger-ui-standalone-preset.js",
            "/swagger/index.html/",
            "/swaggerx",
            "/SWAGGER/index.html",
            "/index.html",
        ] {
            assert!(answer(path).is_none(), "{path}");
        }
    }

    /// A zip archive of `entries` (name, bytes), stored uncompressed, with `comment` after the
    /// end record.
    fn stored_zip(entries: &[(&str, &[u8])], comment: &[u8]) -> Vec<u8> {
        let mut zip = Vec::new();
        let mut directory = Vec::new();
        for (name, bytes) in entries {
            let local = zip.len() as u32;
            let size = (bytes.len() as u32).to_le_bytes();
            let name_len = (name.len() as u16).to_le_bytes();
            zip.extend(LOCAL_HEADER.to_le_bytes());
            zip.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            zip.extend(size);
            zip.extend(size);
            zip.extend(name_len);
            zip.extend([0, 0]);
            zip.extend(name.as_bytes());
            zip.extend(*bytes);
            directory.extend(DIRECTORY_ENTRY.to_le_bytes());
            directory.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            directory.extend(size);
            directory.extend(size);
            directory.extend(name_len);
            directory.extend([0; 12]);
            directory.extend(local.to_le_bytes());
            directory.extend(name.as_bytes());
        }
        let directory_at = (zip.len() as u32).to_le_bytes();
        let count = (entries.len() as u16).to_le_bytes();
        let directory_len = (directory.len() as u32).to_le_bytes();
        zip.extend(directory);
        zip.extend(END_OF_DIRECTORY.to_le_bytes());
        zip.extend([0, 0, 0, 0]);
        zip.extend(count);
        zip.extend(count);
        zip.extend(directory_len);
        zip.extend(directory_at);
        zip.extend((comment.len() as u16).to_le_bytes());
        zip.extend(comment);
        zip
    }

    #[test]
    fn unzip_finds_entries_below_the_top_folder_only() {
        let zip = stored_zip(
            &[
                ("top/", b""),
                ("top/dist/a.js", b"alert(1)"),
                ("top/b.txt", b"bee"),
                ("other/dist/c.css", b"p {}"),
                ("d.txt", b"no top folder"),
            ],
            b"a comment",
        );
        assert_eq!(unzip(&zip, "dist/a.js"), Ok(b"alert(1)".to_vec()));
        assert_eq!(unzip(&zip, "b.txt"), Ok(b"bee".to_vec()));
        assert_eq!(unzip(&zip, "dist/c.css"), Ok(b"p {}".to_vec()));
        for name in ["a.js", "top/b.txt", "d.txt", "dist/", "../b.txt"] {
            assert_eq!(
                unzip(&zip, name),
                Err(ZipError::NotFound(name.to_string())),
                "{name}"
            );
        }
    }

    #[test]
    fn unzip_of_a_cut_or_broken_archive_is_an_error() {
        let zip = stored_zip(&[("top/a.txt", b"some bytes")], b"");
        for len in 0..zip.len() {
            assert!(unzip(&zip[..len], "a.txt").is_err(), "cut at {len}");
        }
        assert_eq!(
            unzip(b"plain text, not a zip", "a.txt"),
            Err(ZipError::NotZip)
        );
        let mut deflated = zip.clone();
        let method_at = deflated.len() - 22 - (46 + 9) + 10;
        deflated[method_at] = 8;
        assert_eq!(unzip(&deflated, "a.txt"), Err(ZipError::Inflate));
        deflated[method_at] = 12;
        assert_eq!(unzip(&deflated, "a.txt"), Err(ZipError::Method(12)));
    }
}
