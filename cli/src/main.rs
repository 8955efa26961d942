//! The `shoal` binary: assembles the role libraries behind one subcommand each.

mod coordinator_cmd;
mod haadmin_cmd;
mod http;
mod local_cmd;
mod logging;
mod password_cmd;
mod signals;
mod sql;
mod store_cmd;
mod worker_cmd;

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "Shoal: a distributed SQL query cluster with no single point of failure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run a coordinator.
    Coordinator(coordinator_cmd::CoordinatorArgs),
    /// Run a worker.
    Worker(worker_cmd::WorkerArgs),
    /// Start a whole cluster on this machine as child processes.
    Local(local_cmd::LocalArgs),
    /// See and steer the high-availability state of a running cluster.
    Haadmin(haadmin_cmd::HaadminArgs),
    /// A SQL shell for any coordinator (Trino protocol).
    Sql(sql::SqlArgs),
    /// Print a password file line (user:argon2-hash) for a password read from standard input.
    PasswordHash(password_cmd::PasswordHashArgs),
    /// Tools for a member's replicated state-store data.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
}

/// Why a command failed, and with which exit code: 2 for usage, configuration and connection
/// problems, 1 for everything else.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            error: anyhow::anyhow!(message.into()),
        }
    }

    pub fn runtime(error: anyhow::Error) -> Self {
        Failure { code: 1, error }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Roles log as their configuration says, once it is read; other commands log as text.
    if !matches!(cli.command, Command::Coordinator(_) | Command::Worker(_)) {
        logging::init_logging(false);
    }
    let result = match cli.command {
        Command::Coordinator(args) => coordinator_cmd::run(args),
        Command::Worker(args) => worker_cmd::run(args),
        Command::Local(args) => local_cmd::run(args),
        Command::Haadmin(args) => haadmin_cmd::run(args),
        Command::Sql(args) => sql::run(args),
        Command::PasswordHash(args) => password_cmd::run(args),
        Command::Store(command) => store_cmd::run(command).map_err(Failure::runtime),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("shoal: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}
