//! Tests of catalog commits on a one-member store: a query's write applies once however often
//! it is committed, never lands in a table created again under the same name, CREATE TABLE
//! AS publishes table and data together, and a settled (fenced) write never applies later.

use datafusion::arrow::datatypes::Schema;
use shoal_state_store::StateStore;

use super::*;
use crate::catalog::{resolve, DataFile, Reads, TableFormat};

async fn store() -> (tempfile::TempDir, StateStore) {
    crate::test_store::one_member_store().await
}

fn record(id: &str, name: &str) -> TableRecord {
    TableRecord {
        id: id.to_string(),
        schema: DEFAULT_SCHEMA.to_string(),
        name: name.to_string(),
        format: TableFormat::Parquet,
        location: format!("/warehouse/{id}"),
        managed: true,
        csv_header: false,
        arrow_schema: Schema::empty(),
        files: Vec::new(),
        version: 0,
        rows: 0,
        bytes: 0,
        created_ms: 0,
    }
}

fn batch(writer: &Writer, rows: u64) -> FileBatch {
    FileBatch {
        removed: Vec::new(),
        removed_collected: false,
        version: 1,
        query_id: writer.query_id.clone(),
        attempt: writer.attempt,
        files: vec![DataFile {
            path: format!(
                "/warehouse/x/{}.{}/part-0.parquet",
                writer.query_id, writer.attempt
            ),
            bytes: 10,
        }],
        rows,
        bytes: 10,
    }
}

fn writer(query: &str, attempt: u32) -> Writer {
    Writer {
        query_id: query.to_string(),
        attempt,
    }
}

async fn table_now(store: &StateStore, name: &str) -> TableRecord {
    let reads = Reads {
        tables: vec![(DEFAULT_SCHEMA.to_string(), name.to_string())],
        ..Reads::default()
    };
    let snapshot = resolve(store, &reads).await.expect("resolve");
    snapshot.tables[&(DEFAULT_SCHEMA.to_string(), name.to_string())].clone()
}

#[tokio::test]
async fn a_write_applies_once_however_often_it_commits() {
    let (_dir, store) = store().await;
    let table = record("a1", "t");
    assert!(create_table(&store, &table, false).await.expect("create"));
    let first = writer("q1", 0);
    for attempt in [first.clone(), writer("q1", 1), first.clone()] {
        let done = append(
            &store,
            DEFAULT_SCHEMA,
            "t",
            "a1",
            batch(&attempt, 2),
            &attempt,
        )
        .await
        .expect("commit");
        assert_eq!(done, Committed::Applied { rows: 2 });
    }
    let now = table_now(&store, "t").await;
    assert_eq!((now.version, now.rows, now.files.len()), (1, 2, 1));
    let other = writer("q2", 0);
    append(&store, DEFAULT_SCHEMA, "t", "a1", batch(&other, 3), &other)
        .await
        .expect("another query");
    let now = table_now(&store, "t").await;
    assert_eq!((now.version, now.rows, now.files.len()), (2, 5, 2));
}

#[tokio::test]
async fn a_write_never_lands_in_a_table_created_again() {
    let (_dir, store) = store().await;
    create_table(&store, &record("old", "t"), false)
        .await
        .expect("create");
    drop_table(&store, DEFAULT_SCHEMA, "t").await.expect("drop");
    create_table(&store, &record("new", "t"), false)
        .await
        .expect("again");
    let late = writer("q1", 0);
    let error = append(&store, DEFAULT_SCHEMA, "t", "old", batch(&late, 2), &late)
        .await
        .expect_err("the table the write started on is gone");
    assert!(
        matches!(error, CatalogError::DroppedWhileWriting(..)),
        "{error}"
    );
    assert_eq!(table_now(&store, "t").await.rows, 0);
}

#[tokio::test]
async fn create_table_as_publishes_table_and_data_together_once() {
    let (_dir, store) = store().await;
    let ctas = writer("q1", 0);
    let table = record("c1", "made");
    for _ in 0..2 {
        let done = create_table_with_data(&store, &table, &batch(&ctas, 4), &ctas, false)
            .await
            .expect("ctas");
        assert_eq!(done, Committed::Applied { rows: 4 });
    }
    let now = table_now(&store, "made").await;
    assert_eq!((now.version, now.rows, now.files.len()), (1, 4, 1));
    let other = writer("q2", 0);
    let error = create_table_with_data(
        &store,
        &record("c2", "made"),
        &batch(&other, 1),
        &other,
        false,
    )
    .await
    .expect_err("exists");
    assert!(matches!(error, CatalogError::TableExists(..)), "{error}");
    let done = create_table_with_data(
        &store,
        &record("c3", "made"),
        &batch(&other, 1),
        &other,
        true,
    )
    .await
    .expect("if not exists");
    assert_eq!(done, Committed::AlreadyExists);
}

#[tokio::test]
async fn a_settled_write_never_applies_later() {
    let (_dir, store) = store().await;
    create_table(&store, &record("s1", "t"), false)
        .await
        .expect("create");
    let lost = writer("q1", 0);
    let cause = CoordinatorError::Unavailable("reply lost".into());
    let settled = settle(&store, &lost, cause).await;
    assert!(settled.is_err(), "nothing had committed: {settled:?}");
    // The commit arriving late finds the fence and does not apply.
    let late = append(&store, DEFAULT_SCHEMA, "t", "s1", batch(&lost, 2), &lost).await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(table_now(&store, "t").await.rows, 0);
    // A write that did commit settles as committed.
    let done = writer("q2", 0);
    append(&store, DEFAULT_SCHEMA, "t", "s1", batch(&done, 3), &done)
        .await
        .expect("commit");
    let again = settle(
        &store,
        &done,
        CoordinatorError::Unavailable("reply lost".into()),
    )
    .await;
    assert_eq!(again.expect("settled"), Committed::Applied { rows: 3 });
}

#[tokio::test]
async fn no_table_is_created_in_a_schema_being_dropped() {
    let (_dir, store) = store().await;
    assert!(create_schema(&store, "s", false).await.expect("schema"));
    let mut table = record("t1", "t");
    table.schema = "s".into();
    create_table(&store, &table, false).await.expect("table");
    let error = drop_schema(&store, "s", false)
        .await
        .expect_err("not empty");
    assert!(matches!(error, CatalogError::SchemaNotEmpty(_)), "{error}");
    // The refused drop leaves the schema usable.
    let mut other = record("t2", "u");
    other.schema = "s".into();
    create_table(&store, &other, false)
        .await
        .expect("still usable");
    // While the mark is there, creation is refused as in a missing schema.
    store
        .txn(txn(Vec::new(), vec![put(dropping_key("s"), Vec::new())]))
        .await
        .expect("mark");
    let mut third = record("t3", "v");
    third.schema = "s".into();
    let error = create_table(&store, &third, false)
        .await
        .expect_err("being dropped");
    assert!(matches!(error, CatalogError::SchemaNotFound(_)), "{error}");
    store.delete(&dropping_key("s")).await.expect("unmark");
    drop_table(&store, "s", "t").await.expect("drop t");
    drop_table(&store, "s", "u").await.expect("drop u");
    assert!(drop_schema(&store, "s", false).await.expect("empty now"));
    assert!(!drop_schema(&store, "s", true).await.expect("if exists"));
}

#[tokio::test]
async fn the_write_of_a_dead_driver_settles_as_committed_or_never_applies() {
    let (_dir, store) = store().await;
    create_table(&store, &record("d1", "t"), false)
        .await
        .expect("create");
    // Its driver died before committing: settled as not applied, and a late commit is refused.
    let lost = writer("q1", 0);
    assert_eq!(settle_lost(&store, "q1", 0).await.expect("settle"), None);
    let late = append(&store, DEFAULT_SCHEMA, "t", "d1", batch(&lost, 2), &lost).await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(table_now(&store, "t").await.rows, 0);
    // Its driver died after committing: settled as committed, with its rows.
    let done = writer("q2", 0);
    append(&store, DEFAULT_SCHEMA, "t", "d1", batch(&done, 3), &done)
        .await
        .expect("commit");
    assert_eq!(settle_lost(&store, "q2", 0).await.expect("settle"), Some(3));
    assert_eq!(table_now(&store, "t").await.rows, 3);
}
