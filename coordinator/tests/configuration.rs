//! The example `etc/` parses, documents every key with the code's default, and bad
//! configuration stops with the file, line, key and reason.

use std::path::{Path, PathBuf};

use shoal_coordinator::config::{CONFIG_KEYS, STATE_STORE_KEYS};
use shoal_coordinator::CoordinatorConfig;
use shoal_proto::properties::{KeySpec, PropertiesFile};
use shoal_seed_store::config::SEED_STORE_KEYS;

fn example_etc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc")
}

#[test]
fn the_example_etc_parses() {
    let config = CoordinatorConfig::load(&example_etc()).expect("example etc parses");
    assert_eq!(config.node_id, 1);
    assert_eq!(config.cluster, "shoal");
    assert_eq!(config.client_port, 8080);
    assert_eq!(config.state_store.bootstrap_expect, 1);
    assert_eq!(
        config.seed_store.heartbeat,
        std::time::Duration::from_secs(1)
    );
}

/// Every declared key appears in its example file, documented, with the declared default.
#[test]
fn documented_defaults_equal_the_code_defaults() {
    // A local profile takes only the key all profiles share (the s3.* keys are refused there).
    let local_profile: Vec<KeySpec> = shoal_storage::FILESYSTEM_KEYS
        .iter()
        .filter(|k| !k.key.starts_with("s3."))
        .copied()
        .collect();
    let files: [(&str, &[KeySpec]); 4] = [
        ("config.properties", CONFIG_KEYS),
        ("state-store.properties", STATE_STORE_KEYS),
        ("seed-store.properties", SEED_STORE_KEYS),
        ("filesystem/local.properties", &local_profile),
    ];
    for (name, specs) in files {
        let path = example_etc().join(name);
        let text = std::fs::read_to_string(&path).expect("example file");
        let file = PropertiesFile::parse(&path, &text).expect("parses");
        for spec in specs {
            let (value, line) = file
                .entries
                .get(spec.key)
                .unwrap_or_else(|| panic!("{name} does not document {}", spec.key));
            let comment = text.lines().nth(line - 2).unwrap_or_default();
            match spec.default {
                Some(default) => {
                    assert_eq!(
                        value, default,
                        "{name}: {} example differs from the default",
                        spec.key
                    );
                    assert_eq!(
                        comment,
                        format!("# Default: {default}"),
                        "{name}: {}",
                        spec.key
                    );
                }
                None => assert_eq!(comment, "# Required.", "{name}: {}", spec.key),
            }
            assert!(
                text.contains(&spec.doc[..spec.doc.len().min(40)]),
                "{name}: {} is not explained",
                spec.key
            );
        }
        assert_eq!(
            file.entries.len(),
            specs.len(),
            "{name} sets only declared keys"
        );
    }
}

fn etc_with(change: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("filesystem")).expect("mkdir");
    for name in [
        "config.properties",
        "state-store.properties",
        "seed-store.properties",
        "filesystem/local.properties",
    ] {
        std::fs::copy(example_etc().join(name), etc.join(name)).expect("copy");
    }
    change(&etc);
    dir
}

fn replace(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

fn load_error(dir: &tempfile::TempDir) -> String {
    CoordinatorConfig::load(&dir.path().join("etc"))
        .expect_err("bad configuration must not load")
        .to_string()
}

#[test]
fn unknown_keys_bad_values_and_missing_keys_are_located() {
    let dir = etc_with(|etc| {
        replace(
            &etc.join("config.properties"),
            "node.environment=shoal",
            "node.enviroment=shoal",
        )
    });
    let error = load_error(&dir);
    assert!(
        error.contains("config.properties:") && error.contains("node.enviroment: unknown key"),
        "{error}"
    );

    let dir = etc_with(|etc| {
        replace(
            &etc.join("state-store.properties"),
            "state-store.heartbeat-interval=50ms",
            "state-store.heartbeat-interval=fast",
        )
    });
    let error = load_error(&dir);
    assert!(
        error.contains("state-store.properties:")
            && error.contains("state-store.heartbeat-interval: expected a duration"),
        "{error}"
    );

    let dir = etc_with(|etc| replace(&etc.join("config.properties"), "node.id=1", ""));
    let error = load_error(&dir);
    assert!(
        error.contains("config.properties: node.id: required but not set"),
        "{error}"
    );

    let dir = etc_with(|etc| {
        replace(
            &etc.join("seed-store.properties"),
            "seed-store.seed.heartbeat.timeout=5s",
            "seed-store.seed.heartbeat.timeout=500ms",
        )
    });
    let error = load_error(&dir);
    assert!(
        error.contains(
            "seed-store.seed.heartbeat.timeout: must be longer than seed-store.seed.heartbeat"
        ),
        "{error}"
    );

    let dir = etc_with(|etc| {
        replace(
            &etc.join("filesystem/local.properties"),
            "fs.client.type=local",
            "fs.client.type=hdfs",
        )
    });
    let error = load_error(&dir);
    assert!(
        error.contains("local.properties:") && error.contains("fs.client.type: expected one of"),
        "{error}"
    );

    let dir = etc_with(|etc| {
        replace(
            &etc.join("config.properties"),
            "http-server.http.port=8080",
            "http-server.http.port=80800",
        )
    });
    let error = load_error(&dir);
    assert!(
        error.contains("http-server.http.port: expected a port number"),
        "{error}"
    );

    let dir =
        etc_with(|etc| std::fs::remove_file(etc.join("seed-store.properties")).expect("remove"));
    let error = load_error(&dir);
    assert!(
        error.contains("seed-store.properties: cannot read"),
        "{error}"
    );
}
