//! The `shoal` binary: assembles the role libraries behind one subcommand each.

mod logging;
mod store_cmd;

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
    /// Tools for a member's replicated state-store data.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
}

fn main() -> std::process::ExitCode {
    logging::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Store(command) => store_cmd::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
