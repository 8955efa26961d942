//! The Trino/Presto client REST protocol's JSON documents (`QueryResults` and its parts), shared
//! by the coordinators that answer them and the clients that read them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One response to `POST /v1/statement` or a `GET` of its `nextUri`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResults {
    pub id: String,
    pub info_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_cancel_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<Column>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::segments::ResultData>,
    pub stats: StatementStats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<QueryError>,
    #[serde(default)]
    pub warnings: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_count: Option<i64>,
}

impl QueryResults {
    /// The rows of a `data` array; None when there are none or they come in segments.
    pub fn rows(&self) -> Option<&Vec<Vec<Value>>> {
        match &self.data {
            Some(crate::segments::ResultData::Rows(rows)) => Some(rows),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    /// The type as SQL text, e.g. `decimal(10,2)` or `array(bigint)`.
    #[serde(rename = "type")]
    pub type_name: String,
    pub type_signature: TypeSignature,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSignature {
    pub raw_type: String,
    pub arguments: Vec<TypeArgument>,
}

/// One argument of a type signature: a number (`LONG`), a type (`TYPE`) or a row field
/// (`NAMED_TYPE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TypeArgument {
    Long(i64),
    Type(TypeSignature),
    NamedType(NamedTypeSignature),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedTypeSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<RowFieldName>,
    pub type_signature: TypeSignature,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowFieldName {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementStats {
    pub state: String,
    pub queued: bool,
    pub scheduled: bool,
    pub nodes: u64,
    pub total_splits: u64,
    pub queued_splits: u64,
    pub running_splits: u64,
    pub completed_splits: u64,
    pub cpu_time_millis: u64,
    pub wall_time_millis: u64,
    pub queued_time_millis: u64,
    pub elapsed_time_millis: u64,
    pub processed_rows: u64,
    pub processed_bytes: u64,
    pub physical_input_bytes: u64,
    pub peak_memory_bytes: u64,
    pub spilled_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_state: Option<String>,
    pub error_code: i64,
    pub error_name: String,
    /// `USER_ERROR`, `INTERNAL_ERROR`, `INSUFFICIENT_RESOURCES` or `EXTERNAL`.
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_location: Option<ErrorLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_info: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLocation {
    pub line_number: u64,
    pub column_number: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_signatures_serialise_like_trino() {
        let signature = TypeSignature {
            raw_type: "row".into(),
            arguments: vec![TypeArgument::NamedType(NamedTypeSignature {
                field_name: Some(RowFieldName { name: "a".into() }),
                type_signature: TypeSignature {
                    raw_type: "decimal".into(),
                    arguments: vec![TypeArgument::Long(10), TypeArgument::Long(2)],
                },
            })],
        };
        let json = serde_json::to_value(&signature).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"rawType": "row", "arguments": [{"kind": "NAMED_TYPE", "value": {
                "fieldName": {"name": "a"},
                "typeSignature": {"rawType": "decimal", "arguments": [
                    {"kind": "LONG", "value": 10}, {"kind": "LONG", "value": 2}]}}}]})
        );
    }
}
