//! What a DataFusion error means for the client, by its type: the variant DataFusion gives it
//! (a parser error, a missing field, a division by zero, memory), the gRPC status a failed
//! call between nodes carries, and, for a statement that did not plan, what the session's
//! catalog and function registry say about the names it uses (a missing schema, table or
//! function). Messages are the error's own; its kind never comes from its text, with one
//! exception named below.

use std::error::Error;
use std::ops::ControlFlow;

use crate::dialect::TrinoDialect;
use datafusion::arrow::error::ArrowError;
use datafusion::common::{SchemaError, TableReference};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use datafusion::sql::sqlparser::parser::ParserError;
use shoal_proto::client::QueryError;

use crate::errors::{
    driver_lost, end_of, error, exceeded_local_memory_limit, internal, location_in, not_found,
    not_supported, syntax, user,
};

/// A worker that could not be reached at all (no channel to it).
#[derive(Debug)]
pub struct WorkerUnreachable {
    pub url: String,
    pub reason: String,
}

impl std::fmt::Display for WorkerUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot reach the worker at {}: {}",
            self.url, self.reason
        )
    }
}

impl Error for WorkerUnreachable {}

/// Whether a source error is a failed call between nodes rather than a fault of the statement.
fn transport_failure(source: &(dyn Error + 'static)) -> bool {
    if source.downcast_ref::<WorkerUnreachable>().is_some() {
        return true;
    }
    // A status that carried a DataFusion error was decoded back into that error by the
    // distributed protocol; a status left as it is is the call's own failure.
    if let Some(status) = source.downcast_ref::<tonic::Status>() {
        return !matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
                | tonic::Code::Unimplemented
                | tonic::Code::FailedPrecondition
                | tonic::Code::OutOfRange
        );
    }
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::NotConnected
        );
    }
    if relayed_transport_failure(source) {
        return true;
    }
    source.source().is_some_and(transport_failure)
}

/// The exception: an error a worker relays from a stage on another worker reaches here as
/// text only (datafusion-distributed sends a wrapped external error by its message), so a
/// failed call between two other nodes is known only by the words tonic and hyper use.
fn relayed_transport_failure(source: &(dyn Error + 'static)) -> bool {
    let message = source.to_string();
    [
        "transport error",
        "tcp connect error",
        "Connection refused",
        "connection reset",
        "status: Unavailable",
        "h2 protocol error",
    ]
    .iter()
    .any(|sign| message.contains(sign))
}

/// Whether `e` (or an error it wraps) is a failed call between the query's nodes.
fn lost_node(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::External(source) => transport_failure(source.as_ref()),
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::ExternalError(source) => transport_failure(source.as_ref()),
            ArrowError::IoError(_, io) => transport_failure(io),
            _ => false,
        },
        DataFusionError::IoError(io) => transport_failure(io),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            lost_node(inner)
        }
        DataFusionError::Shared(inner) => lost_node(inner),
        DataFusionError::Collection(errors) => errors.iter().any(lost_node),
        _ => false,
    }
}

/// Classify a DataFusion error for the client.
pub fn from_datafusion(e: &DataFusionError, sql: &str) -> QueryError {
    if lost_node(e) {
        return driver_lost(e.find_root().to_string());
    }
    match e.find_root() {
        DataFusionError::SQL(parser, _) => {
            let text = match parser.as_ref() {
                ParserError::ParserError(text) | ParserError::TokenizerError(text) => text.clone(),
                ParserError::RecursionLimitExceeded => "the statement is nested too deeply".into(),
            };
            // The parser reports where only in its message.
            let location =
                location_in(&text).or_else(|| text.ends_with("found: EOF").then(|| end_of(sql)));
            syntax(text, location)
        }
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            SchemaError::FieldNotFound { .. } => not_found("COLUMN_NOT_FOUND", schema.to_string()),
            SchemaError::AmbiguousReference { .. } => {
                error(schema.to_string(), 0, "AMBIGUOUS_NAME", "USER_ERROR", None)
            }
            _ => user(schema.to_string()),
        },
        DataFusionError::Plan(message) => user(message.clone()),
        DataFusionError::NotImplemented(message) => not_supported(message.clone()),
        DataFusionError::ResourcesExhausted(message) => {
            exceeded_local_memory_limit(format!("Query exceeded per-node memory limit: {message}"))
        }
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::DivideByZero => {
                error(arrow.to_string(), 8, "DIVISION_BY_ZERO", "USER_ERROR", None)
            }
            other => user(other.to_string()),
        },
        DataFusionError::Execution(message) => user(message.clone()),
        other => internal(&other.to_string()),
    }
}

/// Classify an error of planning `sql` on `context`: a statement naming a schema, table or
/// function the session does not have fails for that reason, whatever DataFusion said.
pub fn planning_error(context: &SessionContext, e: &DataFusionError, sql: &str) -> QueryError {
    let planning = matches!(e.find_root(), DataFusionError::Plan(_));
    if planning {
        if let Some(missing) = missing_name(context, sql) {
            return missing;
        }
    }
    from_datafusion(e, sql)
}

#[derive(Default)]
struct Functions(Vec<String>);

impl Visitor for Functions {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            if let [part] = function.name.0.as_slice() {
                if let Some(ident) = part.as_ident() {
                    let name = match ident.quote_style {
                        Some(_) => ident.value.clone(),
                        None => ident.value.to_lowercase(),
                    };
                    self.0.push(name);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The first schema, table or function of `sql` that `context` does not know.
fn missing_name(context: &SessionContext, sql: &str) -> Option<QueryError> {
    let statements = DFParser::parse_sql_with_dialect(sql, &TrinoDialect).ok()?;
    let statement = statements.front()?;
    let state = context.state();
    let defaults = &state.config().options().catalog;
    if let Ok((tables, _)) = resolve_table_references(statement, true) {
        for reference in tables {
            if let TableReference::Bare { table } = &reference {
                // A table function (`generate_series(1, 3)`) is a relation too.
                if state.table_functions().contains_key(table.as_ref()) {
                    continue;
                }
            }
            let resolved = reference
                .clone()
                .resolve(&defaults.default_catalog, &defaults.default_schema);
            let Some(catalog) = context.catalog(&resolved.catalog) else {
                return Some(not_found(
                    "CATALOG_NOT_FOUND",
                    format!("Catalog '{}' does not exist", resolved.catalog),
                ));
            };
            let Some(schema) = catalog.schema(&resolved.schema) else {
                return Some(not_found(
                    "SCHEMA_NOT_FOUND",
                    format!("Schema '{}' does not exist", resolved.schema),
                ));
            };
            if !schema.table_exist(&resolved.table) {
                return Some(not_found(
                    "TABLE_NOT_FOUND",
                    format!(
                        "Table '{}.{}.{}' does not exist",
                        resolved.catalog, resolved.schema, resolved.table
                    ),
                ));
            }
        }
    }
    let DfStatement::Statement(statement) = statement else {
        return None;
    };
    let mut functions = Functions::default();
    let _ = statement.visit(&mut functions);
    functions.0.into_iter().find_map(|name| {
        let known = state.scalar_functions().contains_key(&name)
            || state.aggregate_functions().contains_key(&name)
            || state.window_functions().contains_key(&name)
            || state.higher_order_functions().contains_key(&name)
            || state.table_functions().contains_key(&name);
        (!known).then(|| {
            error(
                format!("Function '{name}' not registered"),
                6,
                "FUNCTION_NOT_FOUND",
                "USER_ERROR",
                None,
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::Column;

    #[test]
    fn kinds_come_from_the_error_types() {
        let unavailable = DataFusionError::External(Box::new(tonic::Status::unavailable("gone")));
        assert_eq!(
            from_datafusion(&unavailable, "").error_name,
            "REMOTE_HOST_GONE"
        );
        let wrapped = DataFusionError::Context(
            "reading a stage".into(),
            Box::new(DataFusionError::External(Box::new(WorkerUnreachable {
                url: "http://w1".into(),
                reason: "refused".into(),
            }))),
        );
        assert_eq!(from_datafusion(&wrapped, "").error_name, "REMOTE_HOST_GONE");
        let refused =
            DataFusionError::External(Box::new(tonic::Status::invalid_argument("bad plan")));
        assert_ne!(from_datafusion(&refused, "").error_name, "REMOTE_HOST_GONE");
        let missing = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::new_unqualified("x")),
                valid_fields: Vec::new(),
            }),
            Box::new(None),
        );
        assert_eq!(from_datafusion(&missing, "").error_name, "COLUMN_NOT_FOUND");
        let zero = DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None);
        assert_eq!(from_datafusion(&zero, "").error_name, "DIVISION_BY_ZERO");
        // A message that reads like another kind does not make it that kind.
        let plan = DataFusionError::Plan("table 'x' not found; column y does not exist".into());
        assert_eq!(from_datafusion(&plan, "").error_name, "GENERIC_USER_ERROR");
    }
}
