//! The admin key-value API over the replicated state store (`/v1/admin/kv/{key}`), behind the
//! cluster secret: linearizable reads, puts, conditional puts and deletes of operator keys,
//! kept apart from the cluster's own keys under the `kv/` prefix.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shoal_state_store::{Condition, Op, ReadConsistency, TxnRequest};

use crate::error::CoordinatorError;
use crate::node::Coordinator;

/// Where operator keys live in the state store.
const PREFIX: &str = "kv/";

/// Routes of the key-value API; the caller puts them behind the cluster secret.
pub fn router(node: Arc<Coordinator>) -> Router {
    Router::new()
        .route(
            "/v1/admin/kv/{*key}",
            get(get_key).put(put_key).delete(delete_key),
        )
        .with_state(node)
}

/// A key's current value and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvEntry {
    pub key: String,
    pub value: String,
    pub mod_revision: u64,
    pub version: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReadOptions {
    /// `linearizable` (default) or `local`.
    #[serde(default)]
    pub consistency: Option<String>,
}

/// A put, unconditional unless one of the `if*` fields is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRequest {
    pub value: String,
    /// Write only if the key holds exactly this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_value: Option<String>,
    /// Write only if the key is absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_absent: bool,
    /// Write only if the key's last modification has this revision (0: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_mod_revision: Option<u64>,
}

/// The outcome of a put or delete: whether its condition held, and the store's revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOutcome {
    pub succeeded: bool,
    pub revision: u64,
}

fn store_key(key: &str) -> Result<String, CoordinatorError> {
    if key.is_empty() {
        return Err(CoordinatorError::InvalidArgument(
            "a key must not be empty".into(),
        ));
    }
    Ok(format!("{PREFIX}{key}"))
}

fn consistency(options: &ReadOptions) -> Result<ReadConsistency, CoordinatorError> {
    match options.consistency.as_deref() {
        None | Some("linearizable") => Ok(ReadConsistency::Linearizable),
        Some("local") => Ok(ReadConsistency::Local),
        Some(other) => Err(CoordinatorError::InvalidArgument(format!(
            "consistency must be linearizable or local, not {other:?}"
        ))),
    }
}

async fn get_key(
    State(node): State<Arc<Coordinator>>,
    Path(key): Path<String>,
    Query(options): Query<ReadOptions>,
) -> Result<Json<KvEntry>, CoordinatorError> {
    let consistency = consistency(&options)?;
    let stored = node.store.get(&store_key(&key)?, consistency).await?;
    let kv = stored.ok_or_else(|| CoordinatorError::NotFound(format!("no key {key:?}")))?;
    let value = String::from_utf8(kv.value)
        .map_err(|_| CoordinatorError::Internal(format!("key {key:?} is not UTF-8")))?;
    Ok(Json(KvEntry {
        key,
        value,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }))
}

fn conditions(key: &str, request: &PutRequest) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(value) = &request.if_value {
        conditions.push(Condition::ValueEquals {
            key: key.to_string(),
            value: value.clone().into_bytes(),
        });
    }
    if request.if_absent {
        conditions.push(Condition::Exists {
            key: key.to_string(),
            exists: false,
        });
    }
    if let Some(revision) = request.if_mod_revision {
        conditions.push(Condition::ModRevision {
            key: key.to_string(),
            revision,
        });
    }
    conditions
}

async fn put_key(
    State(node): State<Arc<Coordinator>>,
    Path(key): Path<String>,
    Json(request): Json<PutRequest>,
) -> Result<Json<WriteOutcome>, CoordinatorError> {
    let key = store_key(&key)?;
    let txn = TxnRequest {
        conditions: conditions(&key, &request),
        success: vec![Op::Put {
            key,
            value: request.value.into_bytes(),
        }],
        failure: Vec::new(),
    };
    let response = node.store.txn(txn).await?;
    Ok(Json(WriteOutcome {
        succeeded: response.succeeded,
        revision: response.revision,
    }))
}

async fn delete_key(
    State(node): State<Arc<Coordinator>>,
    Path(key): Path<String>,
) -> Result<Json<WriteOutcome>, CoordinatorError> {
    let response = node.store.txn(TxnRequest::delete(store_key(&key)?)).await?;
    Ok(Json(WriteOutcome {
        succeeded: response.deleted > 0,
        revision: response.revision,
    }))
}
