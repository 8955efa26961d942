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
    let path = dir.local_dir().expect("local");
    let root = w.root().local_dir().expect("local");
    assert!(path.starts_with(root.join(&id)));
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
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
    let root = w.root().local_dir().expect("local");
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

#[tokio::test]
async fn symbolic_links_leading_out_are_refused() {
    let (dir, w) = warehouse();
    let root = w.root().local_dir().expect("local");
    let outside = dir.path().join("precious");
    std::fs::create_dir_all(outside.join("sub")).expect("outside");
    std::fs::write(outside.join("keep"), "x").expect("sentinel");
    std::fs::write(outside.join("sub/keep"), "x").expect("sentinel");
    let link = root.join("link");
    std::os::unix::fs::symlink(&outside, &link).expect("link");
    assert!(w.check(&link.join("t")).is_err());
    assert!(w
        .remove_dir(&w.root().child("link").expect("child"))
        .await
        .is_err());
    assert!(w
        .remove_file(&link.join("keep").display().to_string())
        .await
        .is_err());
    // A link deeper down, inside a real table directory.
    let id = new_table_id();
    let table = root.join(&id);
    std::fs::create_dir_all(table.join("q.0")).expect("table");
    std::os::unix::fs::symlink(&outside, table.join("q.0/deep")).expect("link");
    assert!(w.remove_dir(&w.table_dir(&id).expect("dir")).await.is_err());
    assert!(outside.join("keep").exists(), "the sentinel survives");
    assert!(outside.join("sub/keep").exists(), "the sentinel survives");
    // A link to the warehouse root itself leads nowhere new, but is refused all the same.
    let to_root = root.join("root");
    std::os::unix::fs::symlink(&root, &to_root).expect("link");
    assert!(w
        .remove_dir(&w.root().child("root").expect("child"))
        .await
        .is_err());
    assert!(root.exists());
}

#[tokio::test]
async fn remove_dir_removes_only_what_it_is_given() {
    let (_dir, w) = warehouse();
    let id = new_table_id();
    let table = w.table_dir(&id).expect("dir");
    let write = table.child("q.0").expect("child");
    write
        .put("part-0.parquet", bytes::Bytes::from_static(b"x"))
        .await
        .expect("file");
    let other = w.table_dir(&new_table_id()).expect("dir");
    other
        .put("keep", bytes::Bytes::from_static(b"x"))
        .await
        .expect("file");
    w.remove_dir(&table).await.expect("remove");
    assert!(!table.local_dir().expect("local").exists());
    assert!(other.local_dir().expect("local").exists());
    w.remove_dir(&table).await.expect("removing again is fine");
    let file = other.name_of("keep").expect("name");
    assert!(w.root().relative(&file).is_some());
    w.remove_file(&file).await.expect("remove");
    w.remove_file(&file).await.expect("removing again is fine");
    assert!(w.remove_file("/etc/hostname").await.is_err());
}

proptest! {
    /// Whatever text is joined onto the warehouse root, a path the check lets through lies
    /// inside the root, below it, with no `..` or `.` left in it.
    #[test]
    fn checked_paths_stay_inside(suffix in "[a-z./]{0,12}|\\PC{0,12}") {
        let (_dir, w) = warehouse();
        let root = w.root().local_dir().expect("local");
        let candidate = root.join(&suffix);
        if let Ok(path) = w.check(&candidate) {
            prop_assert!(path.starts_with(&root));
            prop_assert!(path != root);
            prop_assert!(path.components().all(|c| !matches!(c, Component::ParentDir | Component::CurDir)));
        }
    }

    /// The directory of a table never depends on its name: every table gets a fresh id, and the
    /// paths built from it are inside the warehouse whatever the schema and table are called.
    #[test]
    fn table_paths_ignore_names(_schema in "\\PC{0,20}", _table in "\\PC{0,20}|\\.\\.|/[a-z/]{0,10}") {
        let (_dir, w) = warehouse();
        let id = new_table_id();
        let dir = w.write_dir(&id, "20261201_103000_00001_c1_abcde", 0).expect("dir").local_dir().expect("local");
        prop_assert!(w.check(&dir).is_ok());
        let root = w.root().local_dir().expect("local");
        prop_assert_eq!(dir.parent().and_then(|p| p.parent()), Some(root.as_path()));
    }
}
