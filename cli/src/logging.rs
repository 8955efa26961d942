//! The one place logging is set up for every subcommand.

use tracing_subscriber::EnvFilter;

/// Log to standard error, filtered by `SHOAL_LOG` (default `info`, with openraft's chatter
/// about unreachable peers kept to errors).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
