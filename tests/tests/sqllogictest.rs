//! The `.slt` files under `tests/slt/` run through the Trino protocol against three
//! coordinator processes and two workers, every statement on the next coordinator and every page from another.

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

#[test]
fn sqllogictest_files_pass_against_three_coordinators() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let urls = cluster.client_urls(3);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("slt directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        // `SHOAL_SLT=12` runs only the files whose names contain it.
        .filter(|p| match std::env::var("SHOAL_SLT") {
            Ok(only) => p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&only)),
            Err(_) => true,
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let client_urls = urls.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let client = TrinoClient::new(client_urls.clone(), "slt");
            async move { Ok::<_, shoal_tests::trino::TrinoError>(client) }
        });
        if let Err(e) = runner.run_file(file) {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "sqllogictest failures:\n{}",
        failures.join("\n\n")
    );
}
