//! `shoal local`: a whole cluster as child processes, described in `cluster.json`, reporting a
//! child's death without stopping the others, and stopping everything on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::{alive, shoal_binary, sql_command};
use shoal_tests::{wait_for, wait_until};

#[test]
fn local_starts_a_cluster_reports_deaths_and_stops_cleanly() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut local = Command::new(shoal_binary())
        .args([
            "local",
            "--coordinators",
            "3",
            "--workers",
            "1",
            "--no-shell",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SHOAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shoal local");
    let stdout = local.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut next_line_containing = |needle: &str| -> String {
        wait_for(
            Duration::from_secs(60),
            &format!("a line with {needle:?} (so far {seen:?})"),
            || {
                while let Ok(line) = lines.try_recv() {
                    seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                None
            },
        )
    };
    next_line_containing("3 coordinators ready");
    next_line_containing("TPC-H sample tables");

    let cluster: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    let nodes = cluster["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 4);
    for node in &nodes[..3] {
        assert_eq!(node["role"], "coordinator");
        assert!(node["id"].is_u64() && node["pid"].is_u64());
        for key in ["client_url", "internal_url"] {
            assert!(
                node[key]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
                "{node}"
            );
        }
    }
    assert_eq!(nodes[3]["role"], "worker");
    assert_eq!(nodes[3]["id"], "worker-1");
    assert!(nodes[3]["internal_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://127.0.0.1:")));
    assert!(
        nodes[3].get("client_url").is_some(),
        "every node has the key"
    );

    let servers: Vec<&str> = nodes[..3]
        .iter()
        .filter_map(|n| n["client_url"].as_str())
        .collect();
    let counted = sql_command(&servers.join(","))
        .args(["--output-format", "csv"])
        .args(["--execute", "SELECT count(*) AS n FROM tpch.nation"])
        .output()
        .expect("shoal sql");
    assert_eq!(
        String::from_utf8_lossy(&counted.stdout),
        "n\n25\n",
        "{counted:?}"
    );

    let victim = nodes[1]["pid"].as_u64().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let report = next_line_containing("exited");
    assert!(
        report.contains(&format!("pid {victim}")) && report.contains("coordinator 2"),
        "{report}"
    );
    let others: Vec<u64> = [0, 2, 3]
        .iter()
        .filter_map(|i| nodes[*i]["pid"].as_u64())
        .collect();
    assert!(
        others.iter().all(|pid| alive(*pid as i32)),
        "the other coordinators keep running"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(local.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = wait_for(Duration::from_secs(30), "shoal local exits", || {
        local.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status}");
    wait_until(Duration::from_secs(5), "every coordinator stopped", || {
        others.iter().all(|pid| !alive(*pid as i32))
    });
}

#[test]
fn local_runs_the_shell_on_the_sample_data_and_stops_when_it_ends() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut local = Command::new(shoal_binary())
        .args(["local", "--data-dir"])
        .arg(dir.path())
        .env("SHOAL_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shoal local");
    let mut stdin = local.stdin.take().expect("stdin");
    use std::io::Write;
    stdin
        .write_all(b"SELECT count(*) AS regions\n  FROM region;\n")
        .expect("a statement");
    drop(stdin);
    let stdout = local.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let status = wait_for(
        Duration::from_secs(90),
        "shoal local exits after the shell",
        || local.try_wait().ok().flatten(),
    );
    let output: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "{status}: {output:?}");
    assert!(
        output.iter().any(|l| l.contains("3 coordinators ready")),
        "{output:?}"
    );
    let table = output.join("\n");
    assert!(
        table.contains(" regions\n---------\n 5\n(1 row)"),
        "the shell printed the count of the sample table region: {output:?}"
    );
    let cluster: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    let pids: Vec<u64> = cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .collect();
    assert_eq!(
        pids.len(),
        5,
        "three coordinators and two workers by default"
    );
    wait_until(Duration::from_secs(10), "every node stopped", || {
        pids.iter().all(|pid| !alive(*pid as i32))
    });
}

#[test]
fn local_with_s3_storage_keeps_warehouse_seeds_and_sample_data_in_a_bucket() {
    assert!(
        shoal_tests::s3::s3s_fs().is_some(),
        "this test needs s3s-fs (the test command installs it)"
    );
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut local = Command::new(shoal_binary())
        .args(["local", "--coordinators", "1", "--workers", "1"])
        .args(["--no-shell", "--storage", "s3", "--data-dir"])
        .arg(dir.path())
        .env("SHOAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start shoal local");
    let stdout = local.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    for needle in ["S3 server", "1 coordinators ready", "TPC-H sample tables"] {
        wait_for(
            Duration::from_secs(90),
            &format!("a line with {needle:?} (so far {seen:?})"),
            || {
                while let Ok(line) = lines.try_recv() {
                    seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                None
            },
        );
    }
    let cluster: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cluster.json")).expect("cluster.json"),
    )
    .expect("json");
    let server = cluster["nodes"][0]["client_url"]
        .as_str()
        .expect("a coordinator")
        .to_string();
    let run = |sql: &str| {
        let output = sql_command(&server)
            .args(["--output-format", "csv", "--execute", sql])
            .output()
            .expect("shoal sql");
        assert!(output.status.success(), "{sql}: {output:?}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(run("SELECT count(*) AS n FROM tpch.nation"), "n\n25\n");
    run("CREATE SCHEMA lake");
    run("CREATE TABLE lake.regions AS SELECT r_regionkey AS k FROM tpch.region");
    assert_eq!(
        run("SELECT sum(k) AS s FROM lake.regions"),
        "s\n10\n",
        "0 + 1 + 2 + 3 + 4"
    );
    // Everything is in the bucket: nothing in local warehouse, seed or sample directories.
    let bucket = dir.path().join("s3").join("shoal");
    for (prefix, what) in [
        ("warehouse", "the table written"),
        ("seeds/local", "the seeds"),
        ("sample/tpch/nation", "the sample data"),
    ] {
        let found = std::fs::read_dir(bucket.join(prefix))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert!(found > 0, "{what} under {prefix} in the bucket");
    }
    for local_dir in ["warehouse", "seeds", "sample"] {
        assert!(!dir.path().join(local_dir).exists(), "no local {local_dir}");
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(local.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = wait_for(Duration::from_secs(30), "shoal local exits", || {
        local.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status}");
}
