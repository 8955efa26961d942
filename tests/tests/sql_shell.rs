//! `shoal sql` against a cluster: statements from `--execute`, output formats, exit codes, and
//! a query that continues on the next server when the coordinator in use dies mid-stream.

use std::io::Read;
use std::process::Stdio;

use shoal_tests::process::{sql_command, ProcessCluster};

fn sql(servers: &[String], args: &[&str]) -> std::process::Output {
    sql_command(&servers.join(","))
        .args(["--user", "shell"])
        .args(args)
        .output()
        .expect("run shoal sql")
}

#[test]
fn execute_formats_and_exit_codes() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    let servers = cluster.client_urls(3);

    let created = sql(
        &servers,
        &[
            "--execute",
            "CREATE SCHEMA shell; CREATE TABLE shell.t AS SELECT * FROM (VALUES (1, 'a,b'), (2, NULL)) AS v(id, name)",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("CREATE TABLE: 2 rows"));

    let select = "SELECT id, name FROM t ORDER BY id";
    let cases = [
        ("csv", "id,name\n1,\"a,b\"\n2,\n"),
        ("tsv", "id\tname\n1\ta,b\n2\t\n"),
        (
            "json",
            "{\"id\":1,\"name\":\"a,b\"}\n{\"id\":2,\"name\":null}\n",
        ),
        (
            "table",
            " id | name\n----+------\n 1  | a,b\n 2  | NULL\n(2 rows)\n",
        ),
    ];
    for (format, expected) in cases {
        let output = sql(
            &servers,
            &[
                "--schema",
                "shell",
                "--output-format",
                format,
                "--execute",
                select,
            ],
        );
        assert!(output.status.success(), "{format}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            expected,
            "{format}"
        );
    }

    let file = cluster.dir.path().join("script.sql");
    std::fs::write(
        &file,
        "USE shell;\n-- a comment; still a comment\nSELECT count(*)\n  FROM t;\n",
    )
    .expect("script");
    let output = sql(
        &servers,
        &["--output-format", "csv", "--file"]
            .iter()
            .copied()
            .chain([file.to_str().expect("path")])
            .collect::<Vec<_>>(),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "_col0\n2\n");

    let failed = sql(&servers, &["--execute", "SELECT * FROM no_such_table"]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("TABLE_NOT_FOUND"));

    let unreachable = sql(
        &["http://127.0.0.1:1".to_string()],
        &["--execute", "SELECT 1"],
    );
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");

    let usage = sql(
        &servers,
        &["--output-format", "xml", "--execute", "SELECT 1"],
    );
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}

#[test]
fn a_query_continues_on_the_next_server_when_its_coordinator_dies() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let servers = cluster.client_urls(3);
    let rows = 200_000;
    let created = sql(
        &servers,
        &[
            "--execute",
            &format!("CREATE TABLE numbers AS SELECT value AS n FROM generate_series(1, {rows}) AS t(value)"),
        ],
    );
    assert!(created.status.success(), "{created:?}");

    // Nobody reads the shell's output at first: once the pipe is full the shell stops
    // fetching pages, in the middle of the result. Then its coordinator dies.
    let mut shell = sql_command(&servers.join(","))
        .args(["--output-format", "csv"])
        .args(["--execute", "SELECT n FROM numbers ORDER BY n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal sql");
    let mut stdout = shell.stdout.take().expect("stdout");
    let mut first = vec![0u8; 4096];
    stdout.read_exact(&mut first).expect("the first rows");
    cluster.kill(1);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("the remaining rows");
    let status = shell.wait().expect("shell exit");
    let mut stderr = String::new();
    shell
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr text");
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        stderr.contains("is unreachable") && stderr.contains(&servers[1]),
        "the shell says where it continued: {stderr}"
    );
    first.extend(rest);
    let text = String::from_utf8(first).expect("utf-8");
    let numbers: Vec<i64> = text
        .lines()
        .skip(1)
        .map(|line| line.parse().expect("a number"))
        .collect();
    assert!(
        numbers.iter().copied().eq(1..=rows),
        "{} rows, not 1..={rows} in order",
        numbers.len()
    );
}

#[test]
fn ctrl_c_cancels_the_running_query() {
    let mut cluster = ProcessCluster::new(1);
    // The observer looks at the shell user's query.
    cluster.extra_config = "query.admin-users=observer\n".into();
    cluster.start_joined(1);
    let servers = cluster.client_urls(1);
    let shell = sql_command(&servers[0])
        .args(["--output-format", "csv"])
        .args([
            "--execute",
            "SELECT count(*) FROM generate_series(1, 100000000000) AS t(v)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal sql");
    let mut client = shoal_tests::trino::TrinoClient::new(servers.clone(), "observer");
    let running = "SELECT count(*) FROM system.runtime.queries WHERE state = 'RUNNING' AND query LIKE '%generate_series(1, 100000000000)%' AND query NOT LIKE '%system.runtime%'";
    shoal_tests::wait_until(
        std::time::Duration::from_secs(30),
        "the long query runs",
        || client.execute(running).is_ok_and(|r| r.rows[0][0] == 1),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shell.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("Ctrl-C");
    let output = shell.wait_with_output().expect("shell exit");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cancelled"),
        "{output:?}"
    );
    let cancelled = "SELECT error_code FROM system.runtime.queries WHERE query LIKE '%generate_series(1, 100000000000)%' AND query NOT LIKE '%system.runtime%'";
    shoal_tests::wait_until(
        std::time::Duration::from_secs(30),
        "the query was cancelled on the server",
        || {
            client
                .execute(cancelled)
                .is_ok_and(|r| r.rows.first().is_some_and(|row| row[0] == "USER_CANCELED"))
        },
    );
}
