//! The Python `trino` client (installed by the test command) against three coordinator
//! processes and two workers: types, paging, errors, cancellation, pages from every coordinator, and the
//! replicated catalog.

use shoal_tests::process::ProcessCluster;
use shoal_tests::python::run_pytest;

#[test]
fn python_trino_client_against_three_coordinators() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let urls = cluster.client_urls(3).join(",");
    let warehouse = cluster.dir.path().join("warehouse");
    let external = cluster.external_dir();
    run_pytest(
        "python",
        &[
            ("SHOAL_COORDINATORS", urls.as_ref()),
            ("SHOAL_WAREHOUSE", warehouse.as_os_str()),
            ("SHOAL_EXTERNAL", external.as_os_str()),
            ("SHOAL_SECRET", cluster.secret.as_ref()),
        ],
        &[],
    );
}
