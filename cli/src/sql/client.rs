//! A Trino-protocol client that survives coordinator deaths: statements and pages go to the
//! current server; when it cannot be reached the client moves to the next one and asks it for
//! the same page, which any coordinator can serve.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::http::HttpClient;
use crate::sql::segments::{Decoded, Segments};
use shoal_proto::client::{QueryError, QueryResults};

/// The encodings `shoal sql` asks for: LZ4 decodes fastest, and either falls back to plain
/// JSON segments.
pub const DEFAULT_ENCODING: &str = "json+lz4,json+zstd,json";

/// How long one request may take; a page request waits about a second on the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a statement did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query failed on the server.
    #[error("{}: {}", .0.error_name, .0.message)]
    Query(QueryError),
    /// No server could be reached.
    #[error("{0}")]
    Connection(String),
    /// A server answered something that is not the protocol.
    #[error("{0}")]
    Protocol(String),
    #[error("query cancelled")]
    Cancelled,
}

/// The session a client carries from statement to statement.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub user: String,
    pub catalog: Option<String>,
    pub schema: Option<String>,
}

pub struct StatementClient {
    http: HttpClient,
    /// `Authorization` header value when the user authenticates with a password.
    authorization: Option<String>,
    servers: Vec<String>,
    current: usize,
    pub session: Session,
    /// `X-Trino-Query-Data-Encoding`: the encodings of the spooling protocol to ask for, in
    /// order of preference; None reads rows from `data` arrays.
    pub encoding: Option<String>,
}

/// One answer of the protocol and the session changes it carried.
struct Answer {
    results: QueryResults,
    set_catalog: Option<String>,
    set_schema: Option<String>,
}

/// A request could not be exchanged with a server (as opposed to a server's refusal).
struct Unreachable(String);

impl StatementClient {
    /// A client of `servers` over `http`, authenticating with `password` when given.
    pub fn new(
        servers: Vec<String>,
        session: Session,
        http: HttpClient,
        password: Option<&str>,
    ) -> Self {
        let authorization = password.map(|password| {
            let pair = format!("{}:{password}", session.user);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        StatementClient {
            http,
            authorization,
            servers: servers
                .into_iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect(),
            current: 0,
            session,
            encoding: Some(DEFAULT_ENCODING.to_string()),
        }
    }

    /// The servers to download a segment from: the one in use first.
    fn servers_from_current(&self) -> Vec<String> {
        let n = self.servers.len();
        (0..n)
            .map(|i| self.servers[(self.current + i) % n].clone())
            .collect()
    }

    pub fn server(&self) -> &str {
        &self.servers[self.current]
    }

    /// Move to the next server after `reason`, saying so; an error once every server failed.
    fn fail_over(&mut self, reason: &str, tried: &mut usize) -> Result<(), SqlError> {
        *tried += 1;
        if *tried >= self.servers.len() {
            return Err(SqlError::Connection(format!(
                "no coordinator can be reached (last: {reason})"
            )));
        }
        let from = self.server().to_string();
        self.current = (self.current + 1) % self.servers.len();
        eprintln!(
            "shoal sql: {from} is unreachable ({reason}); continuing on {}",
            self.server()
        );
        Ok(())
    }

    async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        body: Bytes,
    ) -> Result<Result<Answer, SqlError>, Unreachable> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("X-Trino-User", &self.session.user)
            .header("X-Trino-Source", "shoal-sql");
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        if let Some(catalog) = &self.session.catalog {
            request = request.header("X-Trino-Catalog", catalog);
        }
        if let Some(schema) = &self.session.schema {
            request = request.header("X-Trino-Schema", schema);
        }
        if let Some(encoding) = &self.encoding {
            request = request.header(shoal_proto::segments::ENCODING_HEADER, encoding);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => {
                return Ok(Err(SqlError::Protocol(format!(
                    "bad request to {url}: {e}"
                ))))
            }
        };
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| crate::http::describe(&e))?;
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (set_catalog, set_schema) =
                (header("x-trino-set-catalog"), header("x-trino-set-schema"));
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, set_catalog, set_schema, bytes))
        };
        let (status, set_catalog, set_schema, bytes) =
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(reason)) => return Err(Unreachable(reason)),
                Err(_) => return Err(Unreachable("no answer in time".into())),
            };
        if status.is_server_error() {
            return Err(Unreachable(format!("answered {status}")));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Ok(Err(SqlError::Protocol(format!(
                "{url} answered {status}: {text}"
            ))));
        }
        Ok(serde_json::from_slice(&bytes)
            .map(|results| Answer {
                results,
                set_catalog,
                set_schema,
            })
            .map_err(|e| SqlError::Protocol(format!("unreadable answer from {url}: {e}"))))
    }

    /// `path_and_query` of an absolute URI, asked of the current server.
    fn on_current(&self, uri: &str) -> Result<String, SqlError> {
        let path = uri
            .splitn(4, '/')
            .nth(3)
            .ok_or_else(|| SqlError::Protocol(format!("not an absolute URI: {uri}")))?;
        Ok(format!("{}/{path}", self.server()))
    }

    /// Send `method uri` to the current server, moving on to the next while it cannot be
    /// reached.
    async fn request(
        &mut self,
        method: http::Method,
        uri: Option<&str>,
        body: Bytes,
    ) -> Result<QueryResults, SqlError> {
        let mut tried = 0;
        loop {
            let url = match uri {
                Some(uri) => self.on_current(uri)?,
                None => format!("{}/v1/statement", self.server()),
            };
            match self.exchange(method.clone(), &url, body.clone()).await {
                Ok(answer) => {
                    let answer = answer?;
                    if let Some(catalog) = answer.set_catalog {
                        self.session.catalog = Some(catalog);
                    }
                    if let Some(schema) = answer.set_schema {
                        self.session.schema = Some(schema);
                    }
                    return Ok(answer.results);
                }
                Err(Unreachable(reason)) => self.fail_over(&reason, &mut tried)?,
            }
        }
    }

    /// Run `sql`, handing every answer to `on_answer` (columns, progress) and the rows, in
    /// order, to `on_rows` until the statement ends or `cancelled` completes. Segments are
    /// downloaded while the next answers are asked for, and written as CSV lines where they
    /// are decoded when `csv`.
    pub async fn execute(
        &mut self,
        sql: &str,
        csv: bool,
        mut on_answer: impl FnMut(&QueryResults),
        mut on_rows: impl FnMut(&Decoded),
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Result<QueryResults, SqlError> {
        tokio::pin!(cancelled);
        let mut segments = Segments::new(self.http.clone(), csv);
        let mut results = self
            .request(http::Method::POST, None, Bytes::from(sql.to_string()))
            .await?;
        let outcome = loop {
            if let Some(data) = results.data.take() {
                segments.add(data, self.servers_from_current());
            }
            on_answer(&results);
            if let Some(error) = results.error.take() {
                break Err(SqlError::Query(error));
            }
            let Some(next) = results.next_uri.clone() else {
                break segments.hand_on(true, &mut on_rows).await.map(|()| results);
            };
            if let Err(e) = segments.hand_on(false, &mut on_rows).await {
                self.cancel(&next).await;
                break Err(e);
            }
            let page = self.request(http::Method::GET, Some(&next), Bytes::new());
            tokio::select! {
                page = page => match page {
                    Ok(page) => results = page,
                    Err(e) => break Err(e),
                },
                _ = &mut cancelled => {
                    self.cancel(&next).await;
                    break Err(SqlError::Cancelled);
                }
            }
        };
        segments.abort();
        outcome
    }

    async fn cancel(&mut self, next: &str) {
        if let Ok(url) = self.on_current(next) {
            let _ = self
                .exchange(http::Method::DELETE, &url, Bytes::new())
                .await;
        }
    }
}
