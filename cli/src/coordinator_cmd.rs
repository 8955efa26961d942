//! `shoal coordinator --etc DIR`: run a coordinator until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use shoal_coordinator::CoordinatorConfig;

#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Directory of the coordinator's .properties files.
    #[arg(long)]
    pub etc: PathBuf,
}

/// Exit code 2 for configuration errors, 1 for failures while running.
pub fn run(args: CoordinatorArgs) -> Result<(), crate::Failure> {
    let config = CoordinatorConfig::load(&args.etc)
        .map_err(|e| crate::Failure::usage(format!("configuration error: {e}")))?;
    crate::logging::init_logging(config.log_json);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| crate::Failure::runtime(e.into()))?;
    runtime
        .block_on(serve(config))
        .map_err(crate::Failure::runtime)
}

async fn serve(config: CoordinatorConfig) -> anyhow::Result<()> {
    let client = tokio::net::TcpListener::bind((config.bind_address.as_str(), config.client_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                config.bind_address, config.client_port
            )
        })?;
    let internal =
        tokio::net::TcpListener::bind((config.bind_address.as_str(), config.internal_port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    config.bind_address, config.internal_port
                )
            })?;
    shoal_coordinator::run(config, client, internal, crate::signals::terminated()).await?;
    Ok(())
}
