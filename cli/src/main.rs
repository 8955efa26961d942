//! The `shoal` binary: assembles the role libraries behind one subcommand each.

mod logging;

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
enum Command {}

fn main() -> anyhow::Result<()> {
    logging::init_logging();
    let cli = Cli::parse();
    match cli.command {}
}
