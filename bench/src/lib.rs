//! Shared helpers of the benchmark binaries: latency statistics, free loopback ports and a
//! Trino-protocol client that fails over between coordinators.

pub mod etcd;
pub mod failover_client;
pub mod stats;

/// A loopback port that was free a moment ago (for programs that cannot take port 0).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
