//! Tests of the warehouse's path checks: ids, write directories, `..`, absolute paths and
//! symbolic links, by example and by property.

use super::*;
use proptest::prelude::*;

fn warehouse() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = Warehouse::open(&dir.path().join("warehouse")).expect("open");
    (dir, warehouse)
}

#[test]
fn table_ids_are_fresh_hex() {
    let a = new_table_id();
    let b = new_table_id();
    assert!(is_table_id(&a) && is_table_id(&b), "{a} {b}");
    assert_ne!(a, b);
    for bad in ["", "..", "/etc", "ABCDEF0123456789abcdef0123456789", "a/b"] {
        assert!(!is_table_id(bad), "{bad}");
    }
}

#[test]
fn write_dirs_round_trip() {
    let (_dir, w) = warehouse();
    let id = new_table_id();
    let dir = w
        .write_dir(&id, "20261201_103000_00001_c1_abcde", 2)
        .expect("dir");
    assert!(dir.starts_with(w.root().join(&id)));
    let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
    assert_eq!(
        parse_write_dir_name(name),
        Some(("20261201_103000_00001_c1_abcde", 2))
    );
    assert!(w.write_dir(&id, "../x", 0).is_err());
    assert!(w.write_dir("..", "q", 0).is_err());
    assert_eq!(parse_write_dir_name("x/y.1"), None);
}

#[test]
fn paths_leading_out_are_refused() {
    let (dir, w) = warehouse();
    let root = w.root().to_path_buf();
    for bad in [
        root.clone(),
        root.join(".."),
        root.join("a/../../b"),
        dir.path().to_path_buf(),
        PathBuf::from("/"),
        PathBuf::from("relative/path"),
    ] {
        assert!(w.check(&bad).is_err(), "{} was let through", bad.display());
    }
    assert!(w.check(&root.join("a/b")).is_ok());
}

#[test]
fn symbolic_links_leading_out_are_refused() {
    let (dir, w) = warehouse();
    let outside = dir.path().join("precious");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("keep"), "x").expect("sentinel");
    let link = w.root().join("link");
    std::os::unix::fs::symlink(&outside, &link).expect("link");
    assert!(w.check(&link.join("t")).is_err());
    assert!(w.remove_dir(&link).is_err());
    assert!(w.create_dir(&link.join("new")).is_err());
    assert!(outside.join("keep").exists(), "the sentinel survives");
    // A link to the warehouse root itself leads nowhere new, but is refused all the same.
    let to_root = w.root().join("root");
    std::os::unix::fs::symlink(w.root(), &to_root).expect("link");
    assert!(w.remove_dir(&to_root).is_err());
    assert!(w.root().exists());
}

#[test]
fn remove_dir_removes_only_what_it_is_given() {
    let (_dir, w) = warehouse();
    let id = new_table_id();
    let table = w.table_dir(&id).expect("dir");
    w.create_dir(&table.join("q.0")).expect("create");
    std::fs::write(table.join("q.0/part-0.parquet"), "x").expect("file");
    let other = w.table_dir(&new_table_id()).expect("dir");
    w.create_dir(&other).expect("create");
    w.remove_dir(&table).expect("remove");
    assert!(!table.exists());
    assert!(other.exists());
    w.remove_dir(&table).expect("removing again is fine");
}

proptest! {
    /// Whatever text is joined onto the warehouse root, a path the check lets through lies
    /// inside the root, below it, with no `..` or `.` left in it.
    #[test]
    fn checked_paths_stay_inside(suffix in "[a-z./]{0,12}|\\PC{0,12}") {
        let (_dir, w) = warehouse();
        let candidate = w.root().join(&suffix);
        if let Ok(path) = w.check(&candidate) {
            prop_assert!(path.starts_with(w.root()));
            prop_assert!(path != w.root());
            prop_assert!(path.components().all(|c| !matches!(c, Component::ParentDir | Component::CurDir)));
        }
    }

    /// The directory of a table never depends on its name: every table gets a fresh id, and the
    /// paths built from it are inside the warehouse whatever the schema and table are called.
    #[test]
    fn table_paths_ignore_names(_schema in "\\PC{0,20}", _table in "\\PC{0,20}|\\.\\.|/[a-z/]{0,10}") {
        let (_dir, w) = warehouse();
        let id = new_table_id();
        let dir = w.write_dir(&id, "20261201_103000_00001_c1_abcde", 0).expect("dir");
        prop_assert!(w.check(&dir).is_ok());
        prop_assert_eq!(dir.parent().and_then(|p| p.parent()), Some(w.root()));
    }
}
