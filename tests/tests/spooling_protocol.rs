//! Trino's spooling protocol on a cluster of three coordinators and two workers: a result
//! read as segments has every row once from any coordinator; after its driver died, a
//! finished query hands out the rest of its segments from the spool; acknowledged segments
//! leave the spool, and the sweep removes what no client acknowledged once it expired.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use shoal_proto::segments::{self, ResultData, Segment};
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{download, get_json, query_info, TrinoClient};
use shoal_tests::{wait_for, wait_until};

/// More pages than one answer hands out (4096 rows a page, 32 pages an answer).
const ROWS: i64 = 150_000;

fn cluster(extra_config: &str) -> (ProcessCluster, TrinoClient) {
    let mut cluster = ProcessCluster::new(3);
    // The harness's cleanup interval (1 s) lets the sweep act soon.
    cluster.extra_config = format!("worker.timeout=2s\n{extra_config}");
    // Little memory: the pages are in the spool, where the segments are downloaded from.
    cluster.worker_extra_config =
        "query.max-buffer-memory=65536\nquery.max-spill=268435456\n".into();
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let mut client = TrinoClient::new(cluster.client_urls(3), "spooling");
    client
        .execute(&format!(
            "CREATE TABLE numbers AS SELECT value AS n FROM generate_series(1, {ROWS}) AS t(value)"
        ))
        .expect("create numbers");
    (cluster, client)
}

/// `uri` asked of the coordinator at `base`.
fn on(base: &str, uri: &str) -> String {
    let path = uri.splitn(4, '/').nth(3).expect("an absolute URI");
    format!("{base}/{path}")
}

fn submit(base: &str, sql: &str, encoding: &str) -> Value {
    ureq::post(format!("{base}/v1/statement"))
        .header("X-Trino-User", "spooling")
        .header(segments::ENCODING_HEADER, encoding)
        .send(sql)
        .expect("post a statement")
        .body_mut()
        .read_json()
        .expect("a JSON answer")
}

/// A client reading segments: the next URI, the segments handed out and not yet read.
struct SegmentReader {
    id: String,
    next: Option<String>,
    segments: Vec<(segments::Encoding, Segment)>,
    /// Row offsets of the segments handed out inline.
    inline: Vec<u64>,
}

impl SegmentReader {
    /// The client of the query `first` (the answer to its POST) started.
    fn new(first: &Value) -> Self {
        SegmentReader {
            id: first["id"].as_str().expect("an id").to_string(),
            next: first_next(first),
            segments: Vec::new(),
            inline: Vec::new(),
        }
    }

    /// Follow `nextUri` on `base` until an answer hands out segments or the query ended.
    fn next_answer(&mut self, base: &str) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(uri) = self.next.clone() {
            assert!(
                std::time::Instant::now() < deadline,
                "query {} stalled",
                self.id
            );
            let answer = get_json(&on(base, &uri));
            assert!(answer.get("error").is_none(), "query {}: {answer}", self.id);
            self.next = answer["nextUri"].as_str().map(str::to_string);
            if let Some(data) = answer.get("data") {
                let data: ResultData = serde_json::from_value(data.clone()).expect("data");
                let ResultData::Segments(data) = data else {
                    panic!("query {}: rows in a data array: {answer}", self.id);
                };
                let count = data.segments.len();
                self.inline
                    .extend(data.segments.iter().filter_map(|s| match s {
                        Segment::Inline { metadata, .. } => Some(metadata.row_offset),
                        Segment::Spooled { .. } => None,
                    }));
                self.segments
                    .extend(data.segments.into_iter().map(|s| (data.encoding, s)));
                return count;
            }
        }
        0
    }

    /// Decode every segment handed out (downloading spooled ones from `base`), acknowledging
    /// the spooled ones when `acknowledge`.
    fn rows(&mut self, base: &str, acknowledge: bool) -> Vec<i64> {
        let mut rows = Vec::new();
        for (encoding, segment) in self.segments.drain(..) {
            let payload = match &segment {
                Segment::Inline { data, .. } => base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .expect("base64"),
                Segment::Spooled { uri, .. } => download(&on(base, uri))
                    .unwrap_or_else(|e| panic!("query {}: download {uri}: {e}", self.id)),
            };
            let page = segments::decode_rows(encoding, segment.metadata(), &payload)
                .expect("a segment decodes");
            rows.extend(page.iter().map(|row| row[0].as_i64().expect("a number")));
            if let (Segment::Spooled { ack_uri, .. }, true) = (&segment, acknowledge) {
                ureq::get(on(base, ack_uri))
                    .call()
                    .expect("an acknowledgement");
            }
        }
        rows
    }
}

fn assert_every_row_once(id: &str, mut rows: Vec<i64>) {
    rows.sort_unstable();
    assert!(
        rows.iter().copied().eq(1..=ROWS),
        "query {id}: {} rows, every row of 1..={ROWS} exactly once expected",
        rows.len()
    );
}

fn spool_of(cluster: &ProcessCluster, id: &str) -> PathBuf {
    cluster
        .dir
        .path()
        .join("warehouse")
        .join("_spool")
        .join(format!("{id}.0"))
}

/// The row offsets of the segments in the spool at `dir` (`seg-TOKEN-OFFSET-…`).
fn segment_offsets(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir).map_or(Vec::new(), |entries| {
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_prefix("seg-")?.split('-').nth(1)?.parse().ok()
            })
            .collect()
    })
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .count()
    })
}

#[test]
fn segments_are_read_to_the_end_from_the_spool_after_the_driver_died() {
    let (mut cluster, mut client) = cluster("query.spooled-segment-ttl=10s\n");
    let workers = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes")
        .rows;
    let first = submit(&cluster.client_url(1), "SELECT n FROM numbers", "json+zstd");
    let mut reader = SegmentReader::new(&first);
    let id = reader.id.clone();
    let before = reader.next_answer(&cluster.client_url(1));
    assert!(
        (1..=32).contains(&before),
        "{before} segments in the first answer"
    );
    let record = wait_for(Duration::from_secs(60), "the query finishes", || {
        let record = query_info(&cluster.client_url(2), &id, "spooling");
        (record["state"] == "FINISHED").then_some(record)
    });
    assert!(record["resultSpool"].is_string(), "{record}");
    let pages = (ROWS as usize).div_ceil(4096);
    let driver = record["driver"].as_str().expect("a driver").to_string();
    let worker = workers
        .iter()
        .find(|row| row[1] == driver.as_str())
        .and_then(|row| row[0].as_str())
        .unwrap_or_else(|| panic!("the driver {driver} is not a worker: {workers:?}"))
        .to_string();
    // The first answer's segments are downloaded after the driver is gone too.
    cluster.kill_worker(&worker);
    let mut rows = reader.rows(&cluster.client_url(3), true);
    let mut after = 0;
    while reader.next.is_some() {
        after += reader.next_answer(&cluster.client_url(2));
        rows.extend(reader.rows(&cluster.client_url(3), true));
    }
    // One answer hands out at most 32 pages: the rest came after the driver's death.
    assert_eq!(before + after, pages, "one segment for each page");
    assert!(after > 0);
    assert_every_row_once(&id, rows);
    let inline = reader.inline.clone();
    // Every spooled segment was acknowledged and is gone. Pages handed out inline before they
    // were spooled stay (the dead driver would have removed them as the client moved on)
    // until the segment TTL after the query's end; then the sweep removes the spool.
    let spool = spool_of(&cluster, &id);
    let left = segment_offsets(&spool);
    assert!(
        left.iter().all(|offset| inline.contains(offset)),
        "segments left: {left:?}, handed out inline: {inline:?}"
    );
    wait_until(
        Duration::from_secs(30),
        "the sweep removes the spool",
        || !spool.exists(),
    );
}

#[test]
fn segments_nobody_acknowledges_expire_and_every_encoding_reads_the_same_rows() {
    let (cluster, mut client) = cluster("query.spooled-segment-ttl=3s\n");
    let plain = client.sorted_rows("SELECT n FROM numbers");
    for encoding in ["json+zstd", "json+lz4", "json"] {
        client.set_encoding(encoding);
        client.downloaded = 0;
        assert_eq!(
            client.sorted_rows("SELECT n FROM numbers"),
            plain,
            "{encoding}"
        );
        assert!(client.downloaded > 0, "{encoding}: no spooled segment");
    }
    // Read without acknowledging: the segments stay until they expire.
    let first = submit(&cluster.client_url(1), "SELECT n FROM numbers", "json+lz4");
    let mut reader = SegmentReader::new(&first);
    let mut rows = Vec::new();
    while reader.next.is_some() {
        reader.next_answer(&cluster.client_url(2));
        rows.extend(reader.rows(&cluster.client_url(3), false));
    }
    assert_every_row_once(&reader.id, rows);
    let spool = spool_of(&cluster, &reader.id);
    assert!(
        segment_files(&spool) > 0,
        "unacknowledged segments are kept"
    );
    wait_until(
        Duration::from_secs(30),
        "expired segments are removed",
        || !spool.exists(),
    );
    // An update answers in a data array.
    let created = submit(
        &cluster.client_url(1),
        "CREATE TABLE copied AS SELECT 1 AS x",
        "json+zstd",
    );
    let mut next = first_next(&created);
    let mut data = Vec::new();
    while let Some(uri) = next {
        let answer = get_json(&uri);
        if let Some(rows) = answer.get("data") {
            data.push(rows.clone());
        }
        next = first_next(&answer);
    }
    assert_eq!(data, vec![serde_json::json!([[1]])]);
}

fn first_next(answer: &Value) -> Option<String> {
    answer["nextUri"].as_str().map(str::to_string)
}

#[test]
fn segments_handed_out_before_a_kill_still_download_and_then_the_client_reads_the_kill() {
    let (cluster, mut client) = cluster("query.spooled-segment-ttl=5s\n");
    let first = submit(
        &cluster.client_url(1),
        "SELECT value FROM generate_series(1, 1000000000) AS t(value)",
        "json+lz4",
    );
    let mut reader = SegmentReader::new(&first);
    let id = reader.id.clone();
    let spooled = |reader: &SegmentReader| {
        reader
            .segments
            .iter()
            .any(|(_, s)| matches!(s, Segment::Spooled { .. }))
    };
    let mut rows = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !spooled(&reader) {
        assert!(std::time::Instant::now() < deadline, "no spooled segment");
        rows.extend(reader.rows(&cluster.client_url(1), true));
        assert!(
            reader.next.is_some(),
            "query {id} ended before it was killed"
        );
        reader.next_answer(&cluster.client_url(1));
    }
    client
        .execute(&format!(
            "CALL system.runtime.kill_query(query_id => '{id}', message => 'enough')"
        ))
        .expect("kill the query");
    wait_until(Duration::from_secs(30), "the query fails", || {
        query_info(&cluster.client_url(2), &id, "spooling")["state"] == "FAILED"
    });
    // Every segment handed out before the kill downloads, from another coordinator: the
    // rows are the result's first ones, each once.
    rows.extend(reader.rows(&cluster.client_url(3), true));
    rows.sort_unstable();
    let count = rows.len() as i64;
    assert!(count > 0);
    assert!(
        rows.iter().copied().eq(1..=count),
        "query {id}: the {count} rows handed out are not 1..={count}"
    );
    // Then the client reads the kill, and no row after it.
    let mut next = reader.next.clone();
    let mut failure = None;
    while let (Some(uri), None) = (next.clone(), &failure) {
        assert!(std::time::Instant::now() < deadline, "query {id} stalled");
        let answer = get_json(&on(&cluster.client_url(2), &uri));
        assert!(
            answer.get("data").is_none(),
            "rows after the kill: {answer}"
        );
        next = first_next(&answer);
        failure = answer.get("error").cloned();
    }
    let failure = failure.expect("the query's failure");
    assert_eq!(failure["errorName"], "ADMINISTRATIVELY_KILLED", "{failure}");
    // The segments of the failed query are removed once they expired.
    let spool = spool_of(&cluster, &id);
    wait_until(
        Duration::from_secs(30),
        "the sweep removes the killed query's spool",
        || !spool.exists(),
    );
}
