//! `POST /v1/statement`, `GET` of its `nextUri`, `DELETE` to cancel, and `GET /v1/query/{id}`.
//! Any coordinator answers for any query: pages come from wherever the query's driver is.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datafusion::sql::sqlparser::keywords::Keyword;
use shoal_proto::client::{QueryError, QueryResults, StatementStats};

use crate::node::Coordinator;
use crate::protocol::prepared::{self, Prepared};
use crate::protocol::procedures::{self, Call};
use crate::protocol::session::ClientSession;
use crate::protocol::session_statements::{self, TransactionChange};
use crate::protocol::spooling::{self, SegmentUris};
use crate::query::manager::{Answered, PageToken, RequestError};
use crate::query::record;
use crate::query::session_properties;

/// The longest statement text accepted.
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// Refuse a statement whose announced length is too large at once, before reading it.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_STATEMENT_BYTES as u64) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a statement may have at most {MAX_STATEMENT_BYTES} bytes"),
        )
            .into_response();
    }
    next.run(request).await
}

pub fn router(node: Arc<Coordinator>) -> Router {
    Router::new()
        .route(
            "/v1/statement",
            post(submit)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_STATEMENT_BYTES))
                .layer(axum::middleware::from_fn(refuse_oversized)),
        )
        .route(
            "/v1/statement/executing/{id}/{slug}/{token}",
            get(next_page).head(heartbeat).delete(cancel),
        )
        .route("/v1/query/{id}", get(query_info))
        .with_state(node)
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

/// `scheme://host` as the client addressed this coordinator (through a proxy or not).
fn base_url(headers: &HeaderMap, node: &Coordinator) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ']));
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|s| *s == "http" || *s == "https")
        .unwrap_or(if node.client_url.starts_with("https:") {
            "https"
        } else {
            "http"
        });
    match host {
        Some(host) => format!("{scheme}://{host}"),
        None => node.client_url.clone(),
    }
}

fn stats(state: &str, processed_rows: u64, elapsed_ms: u64) -> StatementStats {
    StatementStats {
        state: state.to_string(),
        queued: state == "QUEUED",
        scheduled: state != "QUEUED",
        nodes: 1,
        processed_rows,
        elapsed_time_millis: elapsed_ms,
        wall_time_millis: elapsed_ms,
        ..StatementStats::default()
    }
}

fn failed(id: &str, base: &str, error: QueryError) -> QueryResults {
    QueryResults {
        id: id.to_string(),
        info_uri: format!("{base}/v1/query/{id}"),
        stats: stats("FAILED", 0, 0),
        error: Some(error),
        ..QueryResults::default()
    }
}

async fn submit(State(node): State<Arc<Coordinator>>, headers: HeaderMap, body: Bytes) -> Response {
    let session = match ClientSession::from_headers(&headers) {
        Ok(session) => session,
        Err(message) => return bad_request(message),
    };
    let Ok(sql) = std::str::from_utf8(&body) else {
        return bad_request("the statement is not UTF-8 text");
    };
    let sql = sql.trim().trim_end_matches(';').trim();
    if sql.is_empty() {
        return bad_request("SQL statement is empty");
    }
    let base = base_url(&headers, &node);
    let checked = session_properties::check_all(&session.properties).and_then(|()| {
        session
            .time_zone
            .as_deref()
            .map_or(Ok(()), session_properties::check_time_zone)
    });
    if let Err(error) = checked {
        return Json(failed("session", &base, error)).into_response();
    }
    let bound;
    let sql = match prepared::interpret(sql, &session.prepared) {
        Ok(Prepared::Other) => sql,
        Ok(Prepared::Run(statement)) => {
            bound = statement;
            bound.as_str()
        }
        Ok(Prepared::Add { name, statement }) => {
            let header = prepared::added_header(&name, &statement);
            return answered(&session, "PREPARE", [("Added-Prepare", header)]);
        }
        Ok(Prepared::Deallocate { name }) => {
            return answered(&session, "DEALLOCATE", [("Deallocated-Prepare", name)]);
        }
        Err(error) => return Json(failed("prepare", &base, error)).into_response(),
    };
    if let Some(response) = answered_here(&node, &session, sql, &base).await {
        return response;
    }
    match node.queries.submit(&node, &session, sql).await {
        Ok(record) => {
            let mut headers = HeaderMap::new();
            if let Some(encoding) = record.encoding {
                headers.insert(
                    HeaderName::from_static(shoal_proto::segments::ENCODING_HEADER),
                    HeaderValue::from_static(encoding.as_str()),
                );
            }
            let results = Json(QueryResults {
                id: record.id.clone(),
                info_uri: format!("{base}/v1/query/{}", record.id),
                next_uri: Some(format!(
                    "{base}/v1/statement/executing/{}/{}/{}",
                    record.id,
                    record.slug,
                    PageToken {
                        attempt: record.attempt,
                        page: 0,
                        end: false,
                    }
                )),
                stats: stats("QUEUED", 0, 0),
                ..QueryResults::default()
            });
            (headers, results).into_response()
        }
        Err(error) => Json(failed("rejected", &base, error)).into_response(),
    }
}

/// Statements that change the client's session or the cluster's queries, answered here at
/// once; None for a statement that becomes a query. Read by their first keyword, so a query
/// is tokenized here once.
async fn answered_here(
    node: &Arc<Coordinator>,
    session: &ClientSession,
    sql: &str,
    base: &str,
) -> Option<Response> {
    let keyword = prepared::first_keyword(sql);
    let in_transaction = session.transaction_id.is_some();
    let response = match keyword {
        Some(Keyword::SET | Keyword::RESET) => match session_statements::interpret(sql) {
            Ok(Some(change)) => answered(session, change.update_type, [change.header()]),
            Ok(None) => return None,
            Err(error) => Json(failed("session", base, error)).into_response(),
        },
        Some(Keyword::START | Keyword::BEGIN | Keyword::COMMIT | Keyword::ROLLBACK) => {
            match session_statements::transaction(sql, in_transaction) {
                Ok(Some(change)) => {
                    let header = match change {
                        TransactionChange::Start => {
                            ("Started-Transaction-Id", crate::query::id::random_token(24))
                        }
                        TransactionChange::End(_) => ("Clear-Transaction-Id", "true".to_string()),
                    };
                    answered(session, change.update_type(), [header])
                }
                Ok(None) => return None,
                Err(error) => Json(failed("transaction", base, error)).into_response(),
            }
        }
        Some(Keyword::CALL) => match procedures::interpret(sql) {
            Ok(Some(Call::KillQuery { query_id, message })) => match node
                .queries
                .kill(node, &query_id, &session.user, message.as_deref())
                .await
            {
                Ok(()) => answered(session, "CALL", []),
                Err(error) => Json(failed("call", base, error)).into_response(),
            },
            Ok(None) => return None,
            Err(error) => Json(failed("call", base, error)).into_response(),
        },
        Some(Keyword::USE) => match session_statements::use_target(sql, session.catalog.as_deref())
        {
            Ok(Some((catalog, schema))) => answered(
                session,
                "USE",
                [("Set-Catalog", catalog), ("Set-Schema", schema)],
            ),
            Ok(None) => return None,
            Err(error) => Json(failed("use", base, error)).into_response(),
        },
        _ if in_transaction && !crate::query::statements::reads_only(sql) => {
            let error = session_statements::write_in_transaction();
            Json(failed("transaction", base, error)).into_response()
        }
        _ => return None,
    };
    Some(response)
}

/// A statement answered here, at once, by telling the client to change its session with
/// `headers` (names without the `X-Trino-` prefix).
fn answered<const N: usize>(
    session: &ClientSession,
    update_type: &str,
    headers: [(&str, String); N],
) -> Response {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(session.family.header(name)),
            HeaderValue::try_from(value),
        ) {
            out.insert(name, value);
        }
    }
    let id = format!(
        "{}_{}",
        update_type.to_ascii_lowercase(),
        crate::query::id::random_token(8)
    );
    let results = QueryResults {
        info_uri: String::new(),
        id,
        stats: stats("FINISHED", 0, 0),
        update_type: Some(update_type.into()),
        ..QueryResults::default()
    };
    (out, Json(results)).into_response()
}

fn results(
    node: &Coordinator,
    id: &str,
    slug: &str,
    base: &str,
    answered: Answered,
) -> QueryResults {
    let Answered {
        mut reply,
        next,
        attempt,
        encoding,
    } = answered;
    let data = match encoding {
        Some(encoding) => {
            let at = SegmentUris {
                base,
                id,
                slug,
                attempt,
                ttl: node.config.spooled_segment_ttl,
            };
            spooling::data(encoding, &mut reply, &at)
        }
        None => (!reply.rows.is_empty())
            .then(|| shoal_proto::segments::ResultData::Rows(std::mem::take(&mut reply.rows))),
    };
    QueryResults {
        id: id.to_string(),
        info_uri: format!("{base}/v1/query/{id}"),
        partial_cancel_uri: None,
        next_uri: next.map(|token| format!("{base}/v1/statement/executing/{id}/{slug}/{token}")),
        columns: reply.columns,
        data,
        stats: stats(&reply.state, reply.processed_rows, reply.elapsed_ms),
        error: reply.error,
        warnings: Vec::new(),
        update_type: reply.update_type,
        update_count: reply.update_count.map(|c| c as i64),
    }
}

async fn next_page(
    State(node): State<Arc<Coordinator>>,
    Path((id, slug, token)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&headers, &node);
    let token: PageToken = match token.parse() {
        Ok(token) => token,
        Err(message) => return bad_request(message),
    };
    match node.queries.page(&node, &id, &slug, token).await {
        Ok(answered) => Json(results(&node, &id, &slug, &base, answered)).into_response(),
        Err(RequestError::Unknown(message)) => (StatusCode::NOT_FOUND, message).into_response(),
        Err(RequestError::Denied(message)) => (StatusCode::FORBIDDEN, message).into_response(),
        Err(RequestError::Failed(error)) => Json(failed(&id, &base, error)).into_response(),
    }
}

/// `HEAD` of a `nextUri`: a client downloading segments says it is still there.
async fn heartbeat(
    State(node): State<Arc<Coordinator>>,
    Path((id, slug, _token)): Path<(String, String, String)>,
) -> StatusCode {
    match record::get(&node.store, &id).await {
        Ok(Some(record)) if shoal_proto::same_secret(record.slug.as_bytes(), slug.as_bytes()) => {
            node.history.note_alive(&id);
            StatusCode::OK
        }
        Ok(_) => StatusCode::NOT_FOUND,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn cancel(
    State(node): State<Arc<Coordinator>>,
    Path((id, slug, _token)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let user = ClientSession::from_headers(&headers).ok().map(|s| s.user);
    match node
        .queries
        .cancel(&node, &id, &slug, user.as_deref())
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(RequestError::Unknown(message)) => (StatusCode::NOT_FOUND, message).into_response(),
        Err(RequestError::Denied(message)) => (StatusCode::FORBIDDEN, message).into_response(),
        Err(RequestError::Failed(error)) => {
            (StatusCode::SERVICE_UNAVAILABLE, error.message).into_response()
        }
    }
}

async fn query_info(
    State(node): State<Arc<Coordinator>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&headers, &node);
    let viewer = ClientSession::from_headers(&headers).map(|s| s.user).ok();
    match record::get(&node.store, &id).await {
        Ok(Some(record))
            if !viewer
                .as_deref()
                .is_some_and(|v| node.may_view_query(v, &record.user)) =>
        {
            (
                StatusCode::FORBIDDEN,
                format!(
                    "Access Denied: {} cannot view query {id}",
                    viewer.as_deref().unwrap_or("a request without a user")
                ),
            )
                .into_response()
        }
        Ok(Some(record)) => Json(serde_json::json!({
            "queryId": record.id,
            "state": record.state.as_str(),
            "query": record.sql,
            "self": format!("{base}/v1/query/{}", record.id),
            "session": {"user": record.user, "source": record.source, "catalog": record.catalog, "schema": record.schema},
            "coordinator": record.coordinator,
            "driver": (!record.driver_url.is_empty()).then_some(&record.driver_url),
            "attempt": record.attempt,
            "resultSpool": record.spool,
            "queryStats": {
                "createTime": humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(record.created_ms)).to_string(),
                "endTime": record.ended_ms.map(|ms| humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()),
                "outputPositions": record.rows,
                "outputDataSize": record.bytes,
            },
            "errorCode": record.error.as_ref().map(|e| serde_json::json!({"code": e.error_code, "name": e.error_name, "type": e.error_type})),
            "failureInfo": record.error.as_ref().map(|e| serde_json::json!({"message": e.message})),
        }))
        .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("query {id} does not exist")).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
