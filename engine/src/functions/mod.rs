//! Trino's functions that DataFusion lacks or names differently, registered on every session:
//! aliases where DataFusion's function means the same, rewrites into DataFusion expressions
//! where it has the pieces (see `rewrite` and `aggregates`), and the session's own values.

mod aggregates;
mod datetime_format;
mod higher_order;
mod json;
mod listagg;
mod map_agg;
mod rewrite;
mod session;
mod try_eval;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::options::QueryOptions;
use aggregates::{AggregateRewrite, Kind as Aggregate};
use rewrite::{Kind, Rewrite};

/// Trino's name for a DataFusion function of the same meaning.
const SCALAR_ALIASES: &[(&str, &str)] = &[
    ("levenshtein", "levenshtein_distance"),
    ("generate_series", "sequence"),
    ("arrays_zip", "zip"),
];

/// Trino's names for DataFusion's higher-order functions (their last argument a lambda).
const HIGHER_ORDER_ALIASES: &[(&str, &str)] = &[
    ("array_transform", "transform"),
    ("array_filter", "filter"),
    ("array_any_match", "any_match"),
];

const AGGREGATE_ALIASES: &[(&str, &str)] = &[
    ("any_value", "arbitrary"),
    ("approx_percentile_cont", "approx_percentile"),
];

const REWRITES: &[(&str, Kind)] = &[
    ("year", Kind::Part("year")),
    ("quarter", Kind::Part("quarter")),
    ("month", Kind::Part("month")),
    ("week", Kind::Part("week")),
    ("week_of_year", Kind::Part("week")),
    ("day", Kind::Part("day")),
    ("day_of_month", Kind::Part("day")),
    ("day_of_week", Kind::Part("isodow")),
    ("dow", Kind::Part("isodow")),
    ("day_of_year", Kind::Part("doy")),
    ("doy", Kind::Part("doy")),
    ("hour", Kind::Part("hour")),
    ("minute", Kind::Part("minute")),
    ("second", Kind::Part("second")),
    ("date_add", Kind::DateAdd),
    ("date_diff", Kind::DateDiff),
    ("typeof", Kind::TypeOf),
    ("if", Kind::If),
    ("regexp_extract", Kind::RegexpExtract),
    ("regexp_replace", Kind::RegexpReplace),
    ("element_at", Kind::ElementAt),
    ("contains", Kind::Contains),
    ("split", Kind::Split),
    ("date_format", Kind::DateFormat),
    ("format_datetime", Kind::FormatDatetime),
    ("to_unixtime", Kind::ToUnixtime),
    ("from_unixtime", Kind::FromUnixtime),
    ("at_timezone", Kind::AtTimezone),
    ("cardinality", Kind::Cardinality),
];

const AGGREGATE_REWRITES: &[(&str, Aggregate)] = &[
    ("count_if", Aggregate::CountIf),
    ("max_by", Aggregate::MaxBy),
    ("min_by", Aggregate::MinBy),
];

/// Trino's functions that run kernels of their own, so that the stages on other workers know
/// them too (see `distributed::worker_service`).
pub fn kernels() -> Vec<ScalarUDF> {
    use json::{Json, Kind as J};
    [
        ("json_extract_scalar", J::ExtractScalar),
        ("json_extract", J::Extract),
        ("json_array_length", J::ArrayLength),
        ("json_parse", J::Parse),
        ("json_format", J::Format),
    ]
    .into_iter()
    .map(|(name, kind)| ScalarUDF::new_from_impl(Json::new(name, kind)))
    .collect()
}

/// Trino's aggregates that run accumulators of their own, known to stage workers too.
pub fn aggregate_kernels() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(map_agg::MapAgg::new()),
        AggregateUDF::new_from_impl(listagg::ListAgg::new()),
    ]
}

/// Trino's higher-order functions that DataFusion lacks (all_match, none_match, reduce, and
/// the function `try` becomes), known to stage workers too.
pub fn higher_order_kernels() -> Vec<HigherOrderUDF> {
    let mut functions = higher_order::functions();
    functions.push(try_eval::evaluate());
    functions
}

/// Register Trino's functions on `context`; those about the session answer `options`'
/// values, `catalog` and `schema`.
pub fn register(context: &SessionContext, options: &QueryOptions, catalog: &str, schema: &str) {
    for (name, alias) in SCALAR_ALIASES {
        if let Ok(function) = context.udf(name) {
            context.register_udf(function.as_ref().clone().with_aliases([*alias]));
        }
    }
    for (name, alias) in HIGHER_ORDER_ALIASES {
        if let Ok(function) = context.higher_order_function(name) {
            context.register_higher_order_function(std::sync::Arc::new(
                function.as_ref().clone().with_aliases([*alias]),
            ));
        }
    }
    for (name, alias) in AGGREGATE_ALIASES {
        if let Ok(function) = context.udaf(name) {
            context.register_udaf(function.as_ref().clone().with_aliases([*alias]));
        }
    }
    for function in kernels() {
        context.register_udf(function);
    }
    for function in aggregate_kernels() {
        context.register_udaf(function);
    }
    for function in higher_order_kernels() {
        context.register_higher_order_function(std::sync::Arc::new(function));
    }
    context.register_udf(ScalarUDF::new_from_impl(try_eval::Try::new()));
    let zone = options.time_zone.clone().unwrap_or_else(|| "UTC".into());
    for (name, kind) in REWRITES {
        context.register_udf(ScalarUDF::new_from_impl(
            Rewrite::new(name, *kind).in_zone(&zone),
        ));
    }
    for (name, kind) in AGGREGATE_REWRITES {
        context.register_udaf(AggregateUDF::new_from_impl(AggregateRewrite::new(
            name, *kind,
        )));
    }
    let user = options.user.clone().unwrap_or_default();
    for (name, value) in [
        ("current_timezone", zone),
        ("current_user", user),
        ("current_catalog", catalog.to_string()),
        ("current_schema", schema.to_string()),
    ] {
        context.register_udf(ScalarUDF::new_from_impl(session::Constant::text(
            name, value,
        )));
    }
}
