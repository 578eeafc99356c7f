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
    postmand::logging::init(&config);
    match postmand::run(command, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if config.log_json => {
            // A log shipper reading JSON lines gets the last words as JSON too.
            log::error!("postmand-exit code={} error={e}", e.exit_code());
            ExitCode::from(e.exit_code())
        }
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
