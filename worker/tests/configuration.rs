//! The example `etc/worker/` parses and documents every worker key with the code's default.

use std::path::{Path, PathBuf};

use shoal_proto::properties::PropertiesFile;
use shoal_worker::config::WORKER_KEYS;
use shoal_worker::WorkerConfig;

fn example_etc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/worker")
}

#[test]
fn the_example_worker_etc_parses_and_documents_the_defaults() {
    let config = WorkerConfig::load(&example_etc()).expect("example etc parses");
    assert_eq!(config.id, "worker-1");
    assert_eq!(config.internal_port, 8082);
    let path = example_etc().join("config.properties");
    let text = std::fs::read_to_string(&path).expect("file");
    let file = PropertiesFile::parse(&path, &text).expect("parses");
    for spec in WORKER_KEYS {
        let (value, line) = file
            .entries
            .get(spec.key)
            .unwrap_or_else(|| panic!("{} is not documented", spec.key));
        let comment = text.lines().nth(line - 2).unwrap_or_default();
        match spec.default {
            Some(default) => {
                assert_eq!(value, default, "{}", spec.key);
                assert_eq!(comment, format!("# Default: {default}"), "{}", spec.key);
            }
            None => assert_eq!(comment, "# Required.", "{}", spec.key),
        }
    }
    assert_eq!(file.entries.len(), WORKER_KEYS.len());
}

#[test]
fn a_bad_worker_id_is_refused_with_its_location() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("filesystem")).expect("mkdir");
    for name in [
        "config.properties",
        "seed-store.properties",
        "filesystem/local.properties",
    ] {
        std::fs::copy(example_etc().join(name), etc.join(name)).expect("copy");
    }
    let config = etc.join("config.properties");
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("node.id=worker-1", "node.id=worker 1");
    std::fs::write(&config, text).expect("write");
    let error = WorkerConfig::load(&etc).expect_err("bad id").to_string();
    assert!(
        error.contains("config.properties:") && error.contains("node.id: may hold only"),
        "{error}"
    );
}
