//! Loading tests: properties files in a temporary etc directory, group files, refresh.

use std::path::Path;

use tempfile::TempDir;

use crate::{AccessControl, AccessError, Identity};

const RULES: &str = r#"{
  "catalogs": [{"group": "admin", "allow": "all"}, {"catalog": "shoal", "allow": "read-only"}],
  "tables": [{"group": "admin", "privileges": ["OWNERSHIP", "SELECT"]},
             {"user": "carol", "table": "orders", "privileges": ["SELECT"]}]
}"#;

/// An install directory with an `etc` inside; returns (install, etc).
fn install() -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    (dir, etc)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn user(name: &str) -> Identity {
    Identity::new(name, Vec::<String>::new())
}

#[test]
fn without_access_control_properties_everything_is_allowed() {
    let (_dir, etc) = install();
    let ac = AccessControl::load(&etc).unwrap();
    let who = ac.identity("anyone");
    assert!(who.groups.is_empty());
    assert!(ac.check_can_drop_table(&who, "c", "s", "t").is_ok());
    assert!(ac.check_can_create_schema(&who, "c", "s").is_ok());
    assert_eq!(ac.last_reload_error(), None);
}

#[test]
fn loads_rules_and_groups_relative_to_the_install_directory() {
    let (_dir, etc) = install();
    write(&etc.join("rules.json"), RULES);
    write(
        &etc.join("access-control.properties"),
        "access-control.name=file\nsecurity.config-file=etc/rules.json\n",
    );
    write(
        &etc.join("groups.txt"),
        "# who administers\nadmin:alice,root\nsales:carol\n",
    );
    write(
        &etc.join("group-provider.properties"),
        "group-provider.name=file\nfile.group-file=etc/groups.txt\n",
    );
    let ac = AccessControl::load(&etc).unwrap();
    let alice = ac.identity("alice");
    assert_eq!(alice.groups, vec!["admin"]);
    assert!(ac.check_can_create_table(&alice, "shoal", "s", "t").is_ok());
    let carol = ac.identity("carol");
    assert_eq!(carol.groups, vec!["sales"]);
    assert!(ac
        .check_can_select_from_table(&carol, "shoal", "s", "orders")
        .is_ok());
    assert!(ac
        .check_can_create_table(&carol, "shoal", "s", "orders")
        .is_err());
    assert!(ac.check_can_access_catalog(&carol, "other").is_err());
    assert!(ac.identity("bob").groups.is_empty());
}

#[test]
fn group_case_and_absolute_paths() {
    let (dir, etc) = install();
    let groups = dir.path().join("groups.txt");
    write(&groups, "Admin:alice\n");
    write(
        &etc.join("group-provider.properties"),
        &format!(
            "group-provider.name=file\ngroup-provider.group-case=lower\nfile.group-file={}\n",
            groups.display()
        ),
    );
    let ac = AccessControl::load(&etc).unwrap();
    assert_eq!(ac.identity("alice").groups, vec!["admin"]);
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let (_dir, etc) = install();
    let props = etc.join("access-control.properties");
    let message = |text: &str| {
        write(&props, text);
        AccessControl::load(&etc).unwrap_err().to_string()
    };
    let error = message("access-control.name=file\nsecurity.config-fil=rules.json\n");
    assert!(
        error.contains("access-control.properties:2: security.config-fil: unknown key"),
        "{error}"
    );
    let error = message("access-control.name=ldap\n");
    assert!(
        error.contains("access-control.name: expected one of"),
        "{error}"
    );
    let error = message("access-control.name=file\n");
    assert!(error.contains("security.config-file: required"), "{error}");
    let error = message("access-control.name=allow-all\nsecurity.config-file=x.json\n");
    assert!(
        error.contains("only used with access-control.name=file"),
        "{error}"
    );
    write(&etc.join("rules.json"), "{}");
    let error = message(
        "access-control.name=file\nsecurity.config-file=etc/rules.json\nsecurity.refresh-period=5\n",
    );
    assert!(error.contains("security.refresh-period"), "{error}");
    let error = message("access-control.name=file\nsecurity.config-file=etc/missing.json\n");
    assert!(error.contains("missing.json: cannot read"), "{error}");
    std::fs::remove_file(&props).unwrap();
    write(
        &etc.join("group-provider.properties"),
        "group-provider.name=file\n",
    );
    let error = AccessControl::load(&etc).unwrap_err().to_string();
    assert!(
        error.contains("file.group-file: required but not set"),
        "{error}"
    );
}

#[test]
fn bad_json_is_refused_with_the_file_name() {
    let (_dir, etc) = install();
    write(
        &etc.join("rules.json"),
        "{\"catalogs\": [\n  {\"allow\": \"all\",}\n]}",
    );
    write(
        &etc.join("access-control.properties"),
        "access-control.name=file\nsecurity.config-file=etc/rules.json\n",
    );
    let error = AccessControl::load(&etc).unwrap_err();
    assert!(matches!(error, AccessError::Json { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("rules.json: invalid rules:"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    write(
        &etc.join("rules.json"),
        r#"{"tables": [{"table": "[", "privileges": []}]}"#,
    );
    let message = AccessControl::load(&etc).unwrap_err().to_string();
    assert!(
        message.contains("rules.json: tables[0].table: invalid regular expression"),
        "{message}"
    );
}

#[test]
fn json_pointer_selects_nested_rules() {
    let (_dir, etc) = install();
    write(
        &etc.join("rules.json"),
        r#"{"data": {"catalogs": [{"catalog": "a", "allow": "all"}]}}"#,
    );
    write(
        &etc.join("access-control.properties"),
        "access-control.name=file\nsecurity.config-file=etc/rules.json\nsecurity.json-pointer=/data\n",
    );
    let ac = AccessControl::load(&etc).unwrap();
    assert!(ac.check_can_access_catalog(&user("x"), "a").is_ok());
    assert!(ac.check_can_access_catalog(&user("x"), "b").is_err());
}

#[test]
fn refresh_picks_up_changes_and_keeps_old_rules_on_a_broken_file() {
    let (_dir, etc) = install();
    let rules = etc.join("rules.json");
    write(
        &rules,
        r#"{"catalogs": [{"catalog": "a", "allow": "all"}]}"#,
    );
    write(
        &etc.join("access-control.properties"),
        "access-control.name=file\nsecurity.config-file=etc/rules.json\nsecurity.refresh-period=0s\n",
    );
    let ac = AccessControl::load(&etc).unwrap();
    let x = user("x");
    assert!(ac.check_can_access_catalog(&x, "a").is_ok());
    assert!(ac.check_can_access_catalog(&x, "b").is_err());

    write(
        &rules,
        r#"{"catalogs": [{"catalog": "b", "allow": "all"}]}"#,
    );
    assert!(
        ac.check_can_access_catalog(&x, "b").is_ok(),
        "the changed rules"
    );
    assert!(ac.check_can_access_catalog(&x, "a").is_err());
    assert_eq!(ac.last_reload_error(), None);

    // Broken JSON: the previous rules stay, and the error is kept.
    write(&rules, r#"{"catalogs": [{"catalog": "c", "#);
    assert!(ac.check_can_access_catalog(&x, "b").is_ok());
    assert!(ac.last_reload_error().is_some(), "the broken file reported");
    assert!(ac.check_can_access_catalog(&x, "c").is_err());
    let error = ac.last_reload_error().unwrap();
    assert!(error.contains("rules.json: invalid rules"), "{error}");

    // A vanished file also keeps the rules.
    std::fs::remove_file(&rules).unwrap();
    assert!(ac.check_can_access_catalog(&x, "b").is_ok());
    assert!(
        ac.last_reload_error()
            .is_some_and(|e| e.contains("cannot read")),
        "the vanished file reported"
    );

    write(
        &rules,
        r#"{"catalogs": [{"catalog": "c", "allow": "all"}]}"#,
    );
    assert!(
        ac.check_can_access_catalog(&x, "c").is_ok(),
        "the repaired rules"
    );
    assert_eq!(ac.last_reload_error(), None);
}

#[test]
fn without_refresh_period_the_file_is_read_once() {
    let (_dir, etc) = install();
    let rules = etc.join("rules.json");
    write(
        &rules,
        r#"{"catalogs": [{"catalog": "a", "allow": "all"}]}"#,
    );
    write(
        &etc.join("access-control.properties"),
        "access-control.name=file\nsecurity.config-file=etc/rules.json\n",
    );
    let ac = AccessControl::load(&etc).unwrap();
    write(
        &rules,
        r#"{"catalogs": [{"catalog": "b", "allow": "all"}]}"#,
    );
    // Without a period there is no re-reading at all (no timer to wait out).
    for _ in 0..3 {
        assert!(ac.check_can_access_catalog(&user("x"), "a").is_ok());
        assert!(ac.check_can_access_catalog(&user("x"), "b").is_err());
    }
}

#[test]
fn group_file_is_refreshed() {
    let (_dir, etc) = install();
    let groups = etc.join("groups.txt");
    write(&groups, "admin:alice\n");
    write(
        &etc.join("group-provider.properties"),
        "group-provider.name=file\nfile.group-file=etc/groups.txt\nfile.refresh-period=0s\n",
    );
    let ac = AccessControl::load(&etc).unwrap();
    assert_eq!(ac.identity("bob").groups, Vec::<String>::new());
    write(&groups, "admin:alice,bob\nbroken line\n");
    assert!(ac.identity("bob").groups.is_empty());
    assert!(
        ac.last_reload_error().is_some(),
        "the broken group file reported"
    );
    assert!(ac.last_reload_error().unwrap().contains("groups.txt:2"));
    write(&groups, "admin:alice,bob\n");
    assert_eq!(
        ac.identity("bob").groups,
        vec!["admin"],
        "the repaired group file"
    );
    assert_eq!(ac.last_reload_error(), None);
}

#[test]
fn clones_share_state_across_threads() {
    let ac = AccessControl::from_rules_json(RULES)
        .unwrap()
        .with_groups([("alice".to_string(), vec!["admin".to_string()])].into());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ac = ac.clone();
            std::thread::spawn(move || {
                let alice = ac.identity("alice");
                ac.check_can_drop_table(&alice, "x", "s", "t").is_ok()
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().unwrap());
    }
}
