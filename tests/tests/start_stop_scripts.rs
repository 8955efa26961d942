//! `deploy/scripts/start-shoal.sh` and `stop-shoal.sh`: coordinators and workers listed in
//! `etc/coordinators` and `etc/workers` start as a working cluster, with pid files, and stop.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_tests::process::{alive, shoal_binary, ProcessCluster};
use shoal_tests::trino::TrinoClient;
use shoal_tests::wait_until;

fn script(name: &str, home: &Path) -> std::process::Output {
    // Bounded: a script that hangs fails the test instead of stalling it.
    Command::new("timeout")
        .args(["120", "bash"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/scripts")
                .join(name),
        )
        .env("SHOAL_HOME", home)
        .env("SHOAL_PID_DIR", home.join("pids"))
        .env("SHOAL_LOG_DIR", home.join("logs"))
        .env("SHOAL_BIN", shoal_binary())
        .env("SHOAL_LOG", "info")
        .output()
        .expect("run the script")
}

#[test]
fn the_scripts_start_and_stop_the_listed_nodes() {
    let mut cluster = ProcessCluster::new(3);
    let home = cluster.dir.path().join("home");
    std::fs::create_dir_all(home.join("etc")).expect("home");
    let coordinators: String = (1..=3)
        .map(|id| format!("localhost {}\n", cluster.configure(id).etc.display()))
        .collect();
    std::fs::write(
        home.join("etc/coordinators"),
        format!("# three on this host\n{coordinators}"),
    )
    .expect("coordinators");
    let worker_etc = cluster.configure_worker("w1");
    std::fs::write(
        home.join("etc/workers"),
        format!("localhost {}\n", worker_etc.display()),
    )
    .expect("workers");

    let started = script("start-shoal.sh", &home);
    assert!(started.status.success(), "{started:?}");
    let pid_files: Vec<_> = std::fs::read_dir(home.join("pids"))
        .expect("pid directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(pid_files.len(), 4, "{pid_files:?}");
    let pids: Vec<i32> = pid_files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("pid file")
                .trim()
                .parse()
                .expect("a pid")
        })
        .collect();

    wait_until(
        Duration::from_secs(60),
        "the coordinators form a cluster",
        || (1..=3).all(|id| cluster.joined_state(id).is_some()),
    );
    let mut client = TrinoClient::new(cluster.client_urls(3), "scripts");
    wait_until(Duration::from_secs(30), "the worker is seen", || {
        client
            .execute("SELECT count(*) FROM system.runtime.nodes WHERE NOT coordinator")
            .is_ok_and(|r| r.rows[0][0] == 1)
    });
    let again = script("start-shoal.sh", &home);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("running already"),
        "{again:?}"
    );

    let stopped = script("stop-shoal.sh", &home);
    assert!(stopped.status.success(), "{stopped:?}");
    wait_until(Duration::from_secs(30), "every node stopped", || {
        pids.iter().all(|pid| !alive(*pid))
    });
    let left = std::fs::read_dir(home.join("pids")).expect("pids").count();
    assert_eq!(left, 0, "pid files are removed");
}
