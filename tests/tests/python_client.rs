//! The Python `trino` client (installed by the test command) against three coordinator
//! processes and two workers: types, paging, errors, cancellation, pages from every coordinator, and the
//! replicated catalog.

use std::process::Command;

use shoal_tests::process::ProcessCluster;

#[test]
fn python_trino_client_against_three_coordinators() {
    let available = Command::new("python3")
        .args(["-c", "import trino, pytest, requests"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(available, "python3 with trino, pytest and requests is needed: run scripts/test.sh, which installs them");
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let urls = cluster.client_urls(3);
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
    let output = Command::new("timeout")
        .args([
            "300",
            "python3",
            "-m",
            "pytest",
            "-q",
            "--durations=5",
            "-p",
            "no:cacheprovider",
            tests,
        ])
        .env("SHOAL_COORDINATORS", urls.join(","))
        .env("SHOAL_WAREHOUSE", cluster.dir.path().join("warehouse"))
        .env("SHOAL_SECRET", &cluster.secret)
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "python client tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
