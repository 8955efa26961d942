//! A small blocking client of the Trino protocol for tests, spreading its requests over every
//! coordinator: each statement goes to the next coordinator, and each `nextUri` is followed on
//! the one after, so every page is fetched from a coordinator that did not take the query.
//! With an encoding it reads results as segments of the spooling protocol, downloading each
//! spooled segment from yet another coordinator and acknowledging it.

use base64::Engine;
use serde_json::Value;
use shoal_proto::client::{Column, QueryResults};
use shoal_proto::segments::{self, ResultData, Segment};
use sqllogictest::{DBOutput, DefaultColumnType};

/// A failed statement, shown as `ERROR_NAME: message` so `.slt` files can match either.
#[derive(Debug, thiserror::Error)]
pub enum TrinoError {
    #[error("{name}: {message}")]
    Query { name: String, message: String },
    #[error("http: {0}")]
    Http(String),
}

/// What a statement returned.
#[derive(Debug, Default)]
pub struct StatementResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    pub update_type: Option<String>,
    pub update_count: Option<i64>,
}

pub struct TrinoClient {
    urls: Vec<String>,
    next: usize,
    user: String,
    schema: Option<String>,
    /// Session properties sent with every statement (`X-Trino-Session`).
    session: Vec<(String, String)>,
    /// `X-Trino-Query-Data-Encoding`, when results are read as segments.
    encoding: Option<String>,
    /// Spooled segments downloaded, for tests that check they were.
    pub downloaded: usize,
}

fn http(e: impl std::fmt::Display) -> TrinoError {
    TrinoError::Http(e.to_string())
}

impl TrinoClient {
    pub fn new(urls: Vec<String>, user: &str) -> Self {
        TrinoClient {
            urls,
            next: 0,
            user: user.to_string(),
            schema: None,
            session: Vec::new(),
            encoding: None,
            downloaded: 0,
        }
    }

    /// Ask for results as segments of `encoding` (a comma list of preferences).
    pub fn set_encoding(&mut self, encoding: &str) {
        self.encoding = Some(encoding.to_string());
    }

    /// The rows of one answer's `data`: rows as they are, segments decoded (spooled ones
    /// downloaded from the next coordinator, then acknowledged).
    fn rows_of(&mut self, data: ResultData) -> Result<Vec<Vec<Value>>, TrinoError> {
        let data = match data {
            ResultData::Rows(rows) => return Ok(rows),
            ResultData::Segments(data) => data,
        };
        let mut rows = Vec::new();
        for segment in data.segments {
            let (payload, ack) = match &segment {
                Segment::Inline { data, .. } => (
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(http)?,
                    None,
                ),
                Segment::Spooled { uri, ack_uri, .. } => {
                    let on_next = |uri: &str, base: String| {
                        let path = uri.splitn(4, '/').nth(3).unwrap_or_default().to_string();
                        format!("{base}/{path}")
                    };
                    let bytes = download(&on_next(uri, self.next_url()))?;
                    self.downloaded += 1;
                    (bytes, Some(on_next(ack_uri, self.next_url())))
                }
            };
            rows.extend(
                segments::decode_rows(data.encoding, segment.metadata(), &payload).map_err(http)?,
            );
            if let Some(ack) = ack {
                ureq::get(&ack).call().map_err(http)?;
            }
        }
        Ok(rows)
    }

    /// Send session property `name` = `value` with every later statement.
    pub fn set_session(&mut self, name: &str, value: &str) {
        self.session.retain(|(n, _)| n != name);
        self.session.push((name.to_string(), value.to_string()));
    }

    fn next_url(&mut self) -> String {
        let url = self.urls[self.next % self.urls.len()].clone();
        self.next += 1;
        url
    }

    /// The rows of `sql`, each as its values' text joined by spaces, sorted: a multiset of
    /// rows to compare whole. Fails the test when the query fails.
    pub fn sorted_rows(&mut self, sql: &str) -> Vec<String> {
        let mut rows: Vec<String> = self
            .execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        rows.sort();
        rows
    }

    /// Run `sql` to completion.
    pub fn execute(&mut self, sql: &str) -> Result<StatementResult, TrinoError> {
        let url = self.next_url();
        let mut request =
            ureq::post(format!("{url}/v1/statement")).header("X-Trino-User", &self.user);
        if let Some(schema) = &self.schema {
            request = request.header("X-Trino-Schema", schema);
        }
        for (name, value) in &self.session {
            request = request.header("X-Trino-Session", format!("{name}={value}"));
        }
        if let Some(encoding) = &self.encoding {
            request = request.header(segments::ENCODING_HEADER, encoding);
        }
        let mut response = request.send(sql).map_err(http)?;
        if let Some(schema) = response
            .headers()
            .get("X-Trino-Set-Schema")
            .and_then(|v| v.to_str().ok())
        {
            self.schema = Some(schema.to_string());
        }
        let mut results: QueryResults = response.body_mut().read_json().map_err(http)?;
        let mut out = StatementResult::default();
        loop {
            if let Some(error) = results.error {
                return Err(TrinoError::Query {
                    name: error.error_name,
                    message: error.message,
                });
            }
            if let Some(columns) = results.columns.take() {
                out.columns = columns;
            }
            if let Some(data) = results.data.take() {
                let rows = self.rows_of(data)?;
                out.rows.extend(rows);
            }
            out.update_type = results.update_type.take().or(out.update_type);
            out.update_count = results.update_count.or(out.update_count);
            let Some(next) = results.next_uri.take() else {
                return Ok(out);
            };
            let path = next.splitn(4, '/').nth(3).unwrap_or_default().to_string();
            let base = self.next_url();
            results = ureq::get(format!("{base}/{path}"))
                .header("X-Trino-User", &self.user)
                .call()
                .map_err(http)?
                .body_mut()
                .read_json()
                .map_err(http)?;
        }
    }
}

fn column_type(column: &Column) -> DefaultColumnType {
    match column.type_signature.raw_type.as_str() {
        "tinyint" | "smallint" | "integer" | "bigint" => DefaultColumnType::Integer,
        "real" | "double" | "decimal" => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl sqllogictest::DB for TrinoClient {
    type Error = TrinoError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, TrinoError> {
        let result = self.execute(sql)?;
        if result.update_type.is_some() {
            return Ok(DBOutput::StatementComplete(
                result.update_count.unwrap_or(0).max(0) as u64,
            ));
        }
        Ok(DBOutput::Rows {
            types: result.columns.iter().map(column_type).collect(),
            rows: result
                .rows
                .iter()
                .map(|row| row.iter().map(text).collect())
                .collect(),
        })
    }

    fn engine_name(&self) -> &str {
        "shoal"
    }
}

/// `POST /v1/statement` of `sql` to `url` as user `user`; the first response, as JSON.
pub fn post_statement(url: &str, user: &str, sql: &str) -> Value {
    ureq::post(format!("{url}/v1/statement"))
        .header("X-Trino-User", user)
        .send(sql)
        .expect("post a statement")
        .body_mut()
        .read_json()
        .expect("a JSON answer")
}

/// `POST /v1/statement`, or None when the coordinator cannot be reached or does not answer
/// with JSON (it is starting, for example).
pub fn try_post_statement(url: &str, user: &str, sql: &str) -> Option<Value> {
    ureq::post(format!("{url}/v1/statement"))
        .header("X-Trino-User", user)
        .send(sql)
        .ok()?
        .body_mut()
        .read_json()
        .ok()
}

/// The payload of a spooled segment at `url`.
pub fn download(url: &str) -> Result<Vec<u8>, TrinoError> {
    let mut bytes = Vec::new();
    let mut response = ureq::get(url).call().map_err(http)?;
    std::io::Read::read_to_end(
        &mut response.body_mut().with_config().limit(1 << 30).reader(),
        &mut bytes,
    )
    .map_err(http)?;
    Ok(bytes)
}

/// `GET url` as JSON.
pub fn get_json(url: &str) -> Value {
    ureq::get(url)
        .call()
        .expect("get")
        .body_mut()
        .read_json()
        .expect("a JSON answer")
}

/// `GET /v1/query/{id}` on `base` as `user`: only the query's owner or an admin may look.
pub fn query_info(base: &str, id: &str, user: &str) -> Value {
    ureq::get(format!("{base}/v1/query/{id}"))
        .header("X-Trino-User", user)
        .call()
        .expect("get the query's info")
        .body_mut()
        .read_json()
        .expect("a JSON answer")
}
