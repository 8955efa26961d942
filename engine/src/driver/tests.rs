//! The driver's tests: pages in memory, on disk and in the spool, and a waiting producer.
use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use super::*;

fn numbers(count: i64) -> Prepared {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let column = Arc::new(Int64Array::from_iter_values(0..count));
    let batch = RecordBatch::try_new(schema, vec![column]).expect("a valid batch");
    let frame = SessionContext::new().read_batch(batch).expect("a frame");
    Prepared::Query(frame)
}

/// Every row of the driver's result, read page after page as a client does.
async fn read_all(driver: &Driver) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut token = 0;
    loop {
        let reply = driver.page(token, Duration::from_secs(5)).await;
        assert!(reply.error.is_none(), "{reply:?}");
        seen.extend(
            reply
                .rows
                .iter()
                .map(|row| row[0].as_i64().expect("a number")),
        );
        match reply.next_token {
            Some(next) => token = next,
            None => return seen,
        }
    }
}

#[tokio::test]
async fn pages_beyond_the_memory_limit_go_to_disk_and_come_back_in_order() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spill_dir = dir.path().join("q1");
    let driver = Driver::new(BufferLimits {
        memory_bytes: 1,
        spill_dir: Some(spill_dir.clone()),
        spill_bytes: u64::MAX,
        spool_bytes: 0,
    });
    let rows = (PAGE_ROWS * 3 + 10) as i64;
    let outcome = driver.run(async { Ok(numbers(rows)) }, "select").await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    let (memory, spilled) = driver.held();
    assert!(
        memory > 0 && spilled > 0,
        "memory {memory}, spilled {spilled}"
    );
    assert_eq!(
        std::fs::read_dir(&spill_dir).expect("spill files").count(),
        3
    );
    let seen = read_all(&driver).await;
    assert_eq!(seen, (0..rows).collect::<Vec<_>>());
    assert_eq!(driver.held(), (0, 0));
    assert_eq!(std::fs::read_dir(&spill_dir).expect("spill dir").count(), 0);
    drop(driver);
    assert!(
        !spill_dir.exists(),
        "the spill directory outlived the query"
    );
}

#[tokio::test]
async fn a_result_larger_than_a_page_is_spooled_as_it_is_produced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spool_dir = dir.path().join("q1.0");
    let spool = |name: &str| {
        Some(Arc::new(Spool::new(
            shoal_storage::Storage::default(),
            dir.path().join(name).display().to_string(),
        )))
    };
    // One byte of memory and no spill files: without the spool the producer would wait
    // for the client after the first page; with it, the whole result is produced.
    let limits = BufferLimits {
        spool_bytes: u64::MAX,
        ..BufferLimits::in_memory(1)
    };
    let driver = Driver::spooling_to(limits.clone(), spool("q1.0"));
    let rows = (PAGE_ROWS * 3 + 10) as i64;
    let outcome = driver.run(async { Ok(numbers(rows)) }, "select").await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.pages, 4);
    assert_eq!(
        outcome.spool.as_deref(),
        Some(spool_dir.display().to_string().as_str())
    );
    let mut names: Vec<String> = std::fs::read_dir(&spool_dir)
        .expect("the spool")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "columns.json",
            "page-0.json",
            "page-1.json",
            "page-2.json",
            "page-3.json"
        ]
    );
    // What a coordinator reads after the driver is gone is the whole result.
    let location = shoal_storage::local_location(&spool_dir).expect("location");
    let mut spooled = Vec::new();
    for token in 0..outcome.pages {
        let rows = crate::spool::read_page(&location, token)
            .await
            .expect("a page");
        spooled.extend(rows.iter().map(|row| row[0].as_i64().expect("a number")));
    }
    assert_eq!(spooled, (0..rows).collect::<Vec<_>>());
    assert_eq!(
        crate::spool::read_columns(&location)
            .await
            .expect("columns")[0]
            .name,
        "n"
    );
    // Through the driver the pages come back in order, those beyond memory read from
    // the spool.
    let seen = read_all(&driver).await;
    assert_eq!(seen, (0..rows).collect::<Vec<_>>());

    // A result of one page is never written.
    let small = Driver::spooling_to(limits, spool("q2.0"));
    let outcome = small.run(async { Ok(numbers(10)) }, "select").await;
    assert_eq!((outcome.pages, outcome.spool), (1, None));
    assert!(!dir.path().join("q2.0").exists());
}

#[tokio::test]
async fn without_spill_the_producer_waits_for_the_client() {
    let driver = Driver::new(BufferLimits::in_memory(1));
    let rows = (PAGE_ROWS * 4) as i64;
    let running = {
        let driver = driver.clone();
        tokio::spawn(async move { driver.run(async { Ok(numbers(rows)) }, "select").await })
    };
    let first = driver.page(0, Duration::from_secs(5)).await;
    assert_eq!(first.rows.len(), PAGE_ROWS);
    assert!(
        !running.is_finished(),
        "all pages were produced although only one fits"
    );
    let mut token = 1;
    while let Some(next) = driver.page(token, Duration::from_secs(5)).await.next_token {
        token = next;
    }
    let outcome = running.await.expect("the driver task");
    assert_eq!(outcome.rows, rows as u64);
}

#[tokio::test]
async fn a_client_of_the_spooling_protocol_is_handed_the_spooled_pages_as_segments() {
    use crate::pages::PageSegment;
    use base64::Engine;
    use shoal_proto::segments::{self, Codec, SegmentMetadata};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let spool_dir = dir.path().join("q1.0");
    let spool = Spool::new(
        shoal_storage::Storage::default(),
        spool_dir.display().to_string(),
    )
    .with_encoding(Some(Encoding::JsonZstd));
    let limits = BufferLimits {
        spool_bytes: u64::MAX,
        ..BufferLimits::in_memory(1)
    };
    let driver = Driver::for_client(limits, Some(Arc::new(spool)), Some(Encoding::JsonZstd));
    let rows = (PAGE_ROWS * 3 + 10) as i64;
    let outcome = driver.run(async { Ok(numbers(rows)) }, "select").await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.pages, 4);
    let location = shoal_storage::local_location(&spool_dir).expect("location");
    let objects = |location: &shoal_storage::Location| {
        let location = location.clone();
        async move {
            let mut names: Vec<String> = location
                .list()
                .await
                .expect("a listing")
                .into_iter()
                .map(|e| e.name)
                .collect();
            names.sort();
            names
        }
    };
    let written = objects(&location).await;
    assert_eq!(written.len(), 5, "{written:?}");
    assert!(written.iter().any(|n| n == "columns.json"));

    // One reply hands out every page, each a compressed segment in the spool; the rows of
    // the segments, in order, are the result.
    let reply = driver.page(0, Duration::from_secs(5)).await;
    assert!(reply.rows.is_empty() && reply.error.is_none(), "{reply:?}");
    assert_eq!(reply.next_token, Some(4));
    let mut seen = Vec::new();
    for (token, segment) in reply.segments.iter().enumerate() {
        let PageSegment::Spooled(segment) = segment else {
            panic!("page {token} was not spooled: {segment:?}");
        };
        assert_eq!(segment.name.token, token as u64);
        // The last page, of 10 rows, is too small to compress.
        let codec = if segment.name.rows > 10 {
            Codec::Zstd
        } else {
            Codec::None
        };
        assert_eq!(segment.name.codec, codec);
        assert_eq!(segment.name.offset, seen.len() as u64);
        let payload = location
            .get(&segment.name.object())
            .await
            .expect("a read")
            .expect("the segment");
        let metadata = SegmentMetadata {
            row_offset: segment.name.offset,
            rows_count: segment.name.rows,
            segment_size: segment.size,
            uncompressed_size: segment.name.uncompressed,
            expires_at: None,
        };
        let page = segments::decode_rows(Encoding::JsonZstd, &metadata, &payload)
            .expect("a segment decodes");
        assert_eq!(page.len() as u64, segment.name.rows);
        seen.extend(page.iter().map(|row| row[0].as_i64().expect("a number")));
    }
    assert_eq!(seen, (0..rows).collect::<Vec<_>>());
    // Moving on and reading the end leaves the segments to the client: it acknowledges them.
    let end = driver.page(4, Duration::from_secs(5)).await;
    assert_eq!((end.next_token, end.segments.len()), (None, 0));
    driver.remove_spool();
    tokio::task::yield_now().await;
    assert_eq!(objects(&location).await, written);

    // A result of one page goes inline, compressed once it is large enough.
    let small = Driver::for_client(
        BufferLimits::in_memory(u64::MAX),
        None,
        Some(Encoding::JsonLz4),
    );
    let outcome = small.run(async { Ok(numbers(2000)) }, "select").await;
    assert_eq!(outcome.pages, 1);
    let reply = small.page(0, Duration::from_secs(5)).await;
    let [PageSegment::Inline {
        offset: 0,
        rows: 2000,
        size,
        uncompressed: Some(uncompressed),
        data,
    }] = reply.segments.as_slice()
    else {
        panic!("not one inline segment: {reply:?}");
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    assert_eq!(payload.len() as u64, *size);
    let metadata = SegmentMetadata {
        row_offset: 0,
        rows_count: 2000,
        segment_size: *size,
        uncompressed_size: Some(*uncompressed),
        expires_at: None,
    };
    let page = segments::decode_rows(Encoding::JsonLz4, &metadata, &payload).expect("decodes");
    let numbers: Vec<i64> = page
        .iter()
        .map(|r| r[0].as_i64().expect("a number"))
        .collect();
    assert_eq!(numbers, (0..2000).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_reply_with_the_last_rows_of_a_finished_result_says_so() {
    let driver = Driver::new(BufferLimits::in_memory(u64::MAX));
    let rows = (PAGE_ROWS * 2 + 1) as i64;
    let outcome = driver.run(async { Ok(numbers(rows)) }, "select").await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    let mut last = Vec::new();
    for token in 0..3 {
        last.push(driver.page(token, Duration::from_secs(5)).await.last_rows);
    }
    assert_eq!(last, [false, false, true]);
    let end = driver.page(3, Duration::from_secs(5)).await;
    assert_eq!((end.next_token, end.last_rows), (None, false));

    let one = Driver::new(BufferLimits::in_memory(u64::MAX));
    one.run(async { Ok(numbers(3)) }, "select").await;
    let reply = one.page(0, Duration::from_secs(5)).await;
    assert!(reply.last_rows && reply.rows.len() == 3, "{reply:?}");
    assert_eq!(reply.next_token, Some(1), "the end is asked for still");
}
