//! dbt-trino (installed by the test command: dbt-core and dbt-trino below 1.11) runs the
//! project in `tests/dbt` against three coordinators, each step through another one than
//! the step before: `dbt seed`, `dbt run` (a table, a view and two incremental models, one
//! by delete+insert and one by merge), a second `dbt run` that applies the next batch
//! incrementally, and `dbt test`; then every model's rows are checked exactly.

use std::path::Path;
use std::process::Command;

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

/// Run one dbt command against the coordinator at `url`, failing with dbt's output.
fn dbt(project: &Path, work: &Path, url: &str, args: &[&str]) {
    let address = url.trim_start_matches("http://");
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let output = Command::new("timeout")
        .arg("300")
        .arg("dbt")
        .args(args)
        .args(["--project-dir"])
        .arg(project)
        .args(["--profiles-dir"])
        .arg(project)
        .env("SHOAL_HOST", host)
        .env("SHOAL_PORT", port)
        .env("DBT_TARGET_PATH", work.join("target"))
        .env("DBT_LOG_PATH", work.join("logs"))
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DBT_PARTIAL_PARSE", "false")
        .output()
        .expect("run dbt (the test command installs dbt-core and dbt-trino)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dbt {} through {url} failed:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("dbt {}:\n{stdout}", args.join(" "));
}

#[test]
fn dbt_seeds_runs_incremental_models_and_tests_through_different_coordinators() {
    let available = Command::new("dbt")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("trino"));
    assert!(
        available,
        "dbt with the trino adapter is needed: run scripts/test.sh, which installs it"
    );
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let urls = cluster.client_urls(3);
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbt");
    let work = tempfile::tempdir().expect("a work directory");

    dbt(&project, work.path(), &urls[0], &["seed"]);
    dbt(&project, work.path(), &urls[1], &["run"]);
    let mut client = TrinoClient::new(vec![urls[0].clone()], "check");
    for model in ["events_delete_insert", "events_merge"] {
        assert_eq!(
            client.sorted_rows(&format!("SELECT id, value FROM dbt_test.{model}")),
            ["1 a", "2 b", "3 c"],
            "{model} after the first run"
        );
    }
    dbt(
        &project,
        work.path(),
        &urls[2],
        &["run", "--vars", "{\"batch\": 2}"],
    );
    dbt(&project, work.path(), &urls[0], &["test"]);

    let mut client = TrinoClient::new(vec![urls[1].clone()], "check");
    assert_eq!(
        client.sorted_rows("SELECT * FROM dbt_test.people"),
        ["1 Ana Lisbon 10", "2 Bo Oslo 20", "3 Cy Rome 30"]
    );
    assert_eq!(
        client.sorted_rows("SELECT * FROM dbt_test.people_table"),
        ["1 Ana LISBON 20", "2 Bo OSLO 40", "3 Cy ROME 60"]
    );
    assert_eq!(
        client.sorted_rows("SELECT * FROM dbt_test.people_view"),
        ["2 Bo", "3 Cy"]
    );
    for model in ["events_delete_insert", "events_merge"] {
        assert_eq!(
            client.sorted_rows(&format!("SELECT id, value FROM dbt_test.{model}")),
            ["1 a", "2 B", "3 C", "4 d"],
            "{model} after the incremental run"
        );
    }
    assert_eq!(
        client.sorted_rows("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'dbt_test'"
        ),
        [
            "events BASE TABLE",
            "events_delete_insert BASE TABLE",
            "events_merge BASE TABLE",
            "people BASE TABLE",
            "people_table BASE TABLE",
            "people_view VIEW"
        ],
        "no temporary relation is left behind"
    );
}
