//! Real nginx with `deploy/nginx/nginx.conf` in front of three coordinators: queries through
//! the one nginx address, and they keep working when the coordinator nginx sticks to dies,
//! a query streaming at that moment included.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::{free_port, ProcessCluster};
use shoal_tests::trino::{get_json, post_statement, query_info, TrinoClient};
use shoal_tests::wait_until;

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("nginx is needed: run scripts/test.sh, which installs it")
}

/// The shipped configuration with this cluster's coordinators and a free listening port.
fn configure(cluster: &ProcessCluster, listen: u16) -> PathBuf {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/nginx.conf");
    let text = std::fs::read_to_string(shipped).expect("deploy/nginx/nginx.conf");
    let servers: String = cluster
        .client_urls(3)
        .iter()
        .map(|url| {
            format!(
                "        server {} max_fails=1 fail_timeout=5s;\n",
                url.trim_start_matches("http://")
            )
        })
        .collect();
    let mut lines: Vec<String> = Vec::new();
    let mut servers_written = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server 127.0.0.1:") {
            if !servers_written {
                lines.push(servers.trim_end().to_string());
                servers_written = true;
            }
        } else if trimmed.starts_with("listen ") {
            lines.push(format!("        listen 127.0.0.1:{listen};"));
        } else if trimmed.starts_with("pid ") {
            lines.push(format!(
                "pid {};",
                cluster.dir.path().join("nginx.pid").display()
            ));
        } else {
            lines.push(line.to_string());
        }
    }
    assert!(servers_written, "the shipped nginx.conf lists coordinators");
    let path = cluster.dir.path().join("nginx.conf");
    std::fs::write(&path, lines.join("\n")).expect("write nginx.conf");
    path
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn queries_through_nginx_survive_the_death_of_the_coordinator_it_sticks_to() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let port = free_port();
    let conf = configure(&cluster, port);
    let log = std::fs::File::create(cluster.dir.path().join("nginx.log")).expect("log");
    let _nginx = Nginx(
        Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf)
            .args(["-p"])
            .arg(cluster.dir.path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nginx"),
    );
    let proxy = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "nginx listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let mut client = TrinoClient::new(vec![proxy.clone()], "proxied");
    client
        .execute(
            "CREATE TABLE numbers AS SELECT value AS n FROM generate_series(1, 50000) AS t(value)",
        )
        .expect("create through nginx");

    // A query streaming through nginx while the coordinator behind it dies.
    let first = post_statement(&proxy, "proxied", "SELECT n FROM numbers ORDER BY n");
    let id = first["id"].as_str().expect("id").to_string();
    let mut next = first["nextUri"].as_str().map(str::to_string);
    assert!(
        next.as_deref().is_some_and(|u| u.starts_with(&proxy)),
        "nextUri points at nginx: {first}"
    );
    let mut rows: Vec<i64> = Vec::new();
    let mut killed = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while let Some(uri) = next {
        assert!(
            std::time::Instant::now() < deadline,
            "query {id} did not end"
        );
        let page = get_json(&uri);
        assert!(page.get("error").is_none(), "{page}");
        if let Some(data) = page["data"].as_array() {
            rows.extend(data.iter().map(|r| r[0].as_i64().expect("a number")));
            if !killed {
                let sticky = query_info(&proxy, &id, "proxied")["coordinator"]
                    .as_u64()
                    .expect("the accepting coordinator");
                cluster.kill(sticky);
                killed = true;
            }
        }
        next = page["nextUri"].as_str().map(str::to_string);
    }
    assert!(killed, "the query streamed at least one page");
    assert!(rows.iter().copied().eq(1..=50_000), "{} rows", rows.len());

    // New statements keep working through the same address.
    for _ in 0..5 {
        let result = client
            .execute("SELECT count(*) FROM numbers")
            .expect("count");
        assert_eq!(result.rows, vec![vec![Value::from(50_000)]]);
    }
}
