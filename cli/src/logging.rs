//! The one place logging is set up for every subcommand.

use tracing_subscriber::EnvFilter;

/// Log to standard error, filtered by `SHOAL_LOG` (default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("SHOAL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
