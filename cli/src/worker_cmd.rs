//! `shoal worker --etc DIR`: run a worker until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use shoal_worker::WorkerConfig;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Directory of the worker's .properties files.
    #[arg(long)]
    pub etc: PathBuf,
}

pub fn run(args: WorkerArgs) -> Result<(), crate::Failure> {
    let config = WorkerConfig::load(&args.etc)
        .map_err(|e| crate::Failure::usage(format!("configuration error: {e}")))?;
    crate::logging::init_logging(config.log_json);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| crate::Failure::runtime(e.into()))?;
    runtime
        .block_on(serve(config))
        .map_err(crate::Failure::runtime)
}

async fn serve(config: WorkerConfig) -> anyhow::Result<()> {
    let internal =
        tokio::net::TcpListener::bind((config.bind_address.as_str(), config.internal_port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    config.bind_address, config.internal_port
                )
            })?;
    shoal_worker::run(config, internal, crate::signals::terminated()).await?;
    Ok(())
}
