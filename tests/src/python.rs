//! Running the Python test suites (pytest with the `trino` client) against a cluster.

use std::ffi::OsStr;
use std::process::Command;

/// Run pytest on the suite in `dir` (relative to the tests crate) with `env` set and `unset`
/// removed, failing with pytest's output when a test fails. The test command installs
/// python3 with trino[sqlalchemy], pytest, requests, pandas, zstandard and lz4.
pub fn run_pytest(dir: &str, env: &[(&str, &OsStr)], unset: &[&str]) {
    let available = Command::new("python3")
        .args([
            "-c",
            "import trino, pytest, requests, sqlalchemy, pandas, zstandard, lz4",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        available,
        "python3 with trino[sqlalchemy], pytest, requests, pandas, zstandard and lz4 is needed: run scripts/test.sh, which installs them"
    );
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut pytest = Command::new("timeout");
    pytest
        .args(["300", "python3", "-m", "pytest", "-q", "--durations=5"])
        .args(["-p", "no:cacheprovider"])
        .arg(&suite);
    for (name, value) in env {
        pytest.env(name, value);
    }
    for name in unset {
        pytest.env_remove(name);
    }
    let output = pytest.output().expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "python tests in {dir} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
