//! `shoal store`: offline tools for a stopped member's state-store data directory.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Summarise a stopped member's data directory: format, node id, applied log, revision,
    /// key count and membership.
    Inspect {
        /// The member's state-store data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Inspect { data_dir, json } => inspect(&data_dir, json),
    }
}

fn inspect(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let summary = shoal_state_store::ondisk::inspect(data_dir)
        .with_context(|| format!("cannot inspect {}", data_dir.display()))?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    let or_none = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
    println!("format version   {}", summary.format_version);
    println!("node id          {}", summary.node_id);
    println!(
        "last applied     index {} term {}",
        or_none(summary.last_applied_index),
        or_none(summary.last_applied_term)
    );
    println!("revision         {}", summary.revision);
    println!("keys             {}", summary.keys);
    println!("voters           {:?}", summary.voters);
    println!("learners         {:?}", summary.learners);
    println!(
        "snapshot         {}",
        summary.snapshot_id.as_deref().unwrap_or("none")
    );
    Ok(())
}
