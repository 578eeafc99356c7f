//! Command-line arguments: what to do, decided before any configuration or database is touched,
//! so `--help` and `--version` always work.

use std::fmt;

use crate::VERSION;
use crate::config::SETTINGS;

/// Which parts of the service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The REST API (and the health server).
    Api,
    /// The dispatchers (and the health server).
    Worker,
    /// Both, in one process.
    All,
}

impl Role {
    /// Whether this role serves the REST API.
    pub fn runs_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// Whether this role runs dispatchers.
    pub fn runs_worker(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

/// What the process was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Apply pending migrations and exit.
    Migrate,
    /// Ask this host's health server whether the process is ready: exit 0 or 1 (for a
    /// container's HEALTHCHECK).
    Healthcheck,
    /// Serve until SIGINT/SIGTERM.
    Run(Role),
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Why the arguments do not name a command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgsError {
    /// `--role` without a value.
    MissingRole,
    /// `--role` with a value other than api, worker or all.
    UnknownRole(String),
    /// Anything else that is not a command.
    Unexpected(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::MissingRole => f.write_str("--role needs a value: api, worker or all"),
            ArgsError::UnknownRole(role) => {
                write!(f, "unknown role {role:?}: expected api, worker or all")
            }
            ArgsError::Unexpected(args) => {
                write!(f, "unexpected arguments {args:?}; see postmand --help")
            }
        }
    }
}

impl std::error::Error for ArgsError {}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, ArgsError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => Ok(Command::Run(Role::All)),
        ["-h" | "--help" | "help" | "h", ..] => Ok(Command::Help),
        ["-V" | "--version" | "version"] => Ok(Command::Version),
        ["migrate" | "m"] => Ok(Command::Migrate),
        ["healthcheck"] => Ok(Command::Healthcheck),
        ["server" | "s"] => Ok(Command::Run(Role::Api)),
        ["worker" | "w"] => Ok(Command::Run(Role::Worker)),
        ["--role", role] => parse_role(role),
        [flag] if flag.starts_with("--role=") => parse_role(&flag["--role=".len()..]),
        ["--role"] => Err(ArgsError::MissingRole),
        other => Err(ArgsError::Unexpected(other.join(" "))),
    }
}

fn parse_role(role: &str) -> Result<Command, ArgsError> {
    match role {
        "api" => Ok(Command::Run(Role::Api)),
        "worker" => Ok(Command::Run(Role::Worker)),
        "all" => Ok(Command::Run(Role::All)),
        other => Err(ArgsError::UnknownRole(other.to_string())),
    }
}

/// The text of `--help`, with the environment table from `config::SETTINGS`.
pub fn help() -> String {
    let mut text = format!(
        "{VERSION}: webhook delivery on PostgreSQL\n\n\
         USAGE:\n    \
         postmand [--role api|worker|all]   serve (default: all)\n    \
         postmand migrate                   apply database migrations and exit\n    \
         postmand healthcheck               GET this host's /healthz: exit 0 when it says 200, else 1\n    \
         postmand server | worker           aliases of --role api | --role worker\n    \
         postmand --help | --version\n\n\
         ENVIRONMENT (a .env file in the working directory fills in what is unset):\n"
    );
    for setting in SETTINGS {
        let default = if setting.default.is_empty() {
            String::new()
        } else {
            format!(" [default: {}]", setting.default)
        };
        text.push_str(&format!(
            "    {}{default}\n        {}\n",
            setting.name, setting.doc
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, ArgsError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn roles_and_aliases() {
        assert_eq!(parse_str(&[]), Ok(Command::Run(Role::All)));
        assert_eq!(parse_str(&["--role", "api"]), Ok(Command::Run(Role::Api)));
        assert_eq!(
            parse_str(&["--role=worker"]),
            Ok(Command::Run(Role::Worker))
        );
        assert_eq!(parse_str(&["server"]), Ok(Command::Run(Role::Api)));
        assert_eq!(parse_str(&["worker"]), Ok(Command::Run(Role::Worker)));
        assert_eq!(parse_str(&["migrate"]), Ok(Command::Migrate));
        assert_eq!(parse_str(&["healthcheck"]), Ok(Command::Healthcheck));
        assert_eq!(parse_str(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert_eq!(
            parse_str(&["--role", "cron"]),
            Err(ArgsError::UnknownRole("cron".into()))
        );
        assert_eq!(
            parse_str(&["serve"]),
            Err(ArgsError::Unexpected("serve".into()))
        );
        assert_eq!(parse_str(&["--role"]), Err(ArgsError::MissingRole));
        assert_eq!(
            ArgsError::UnknownRole("cron".into()).to_string(),
            "unknown role \"cron\": expected api, worker or all"
        );
    }

    #[test]
    fn help_lists_every_setting() {
        let help = help();
        for setting in SETTINGS {
            assert!(help.contains(setting.name), "{}", setting.name);
        }
    }
}
