//! The `postmand` binary: parse arguments, read configuration, start the logger, run.

use std::process::ExitCode;

use postmand::cli::{self, Command};
use postmand::config::Config;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(Command::Help) => return print(&cli::help()),
        Ok(Command::Version) => return print(postmand::VERSION),
        Ok(command) => command,
        Err(e) => return fail(&e.to_string(), 2),
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&format!("configuration: {e}"), 2),
    };
    // tiny_http's own lines stop at warn: its debug lines (one per connection) are noise, and
    // its warnings are the patched accept loop's (vendor/tiny_http/PATCHES.md).
    let tiny_http = if config.log_level == "error" {
        "error"
    } else {
        "warn"
    };
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{},tiny_http={tiny_http}", config.log_level));
    // The database driver logs every statement with its parameters at debug: secret tokens,
    // payloads, signatures. Capped after the filter, so no RUST_LOG can lift it.
    env_logger::Builder::new()
        .parse_filters(&filter)
        .filter_module("tokio_postgres", log::LevelFilter::Info)
        .filter_module("postgres", log::LevelFilter::Info)
        .init();
    match postmand::run(command, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string(), e.exit_code()),
    }
}

/// Prints to stdout; a closed pipe (`postmand --help | head -3`) is not an error.
fn print(text: &str) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    ExitCode::SUCCESS
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("postmand: {message}");
    ExitCode::from(code)
}
