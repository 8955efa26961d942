//! Trino's functions that DataFusion lacks or names differently, registered on every session.

mod session;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

use crate::options::QueryOptions;

/// Register Trino's functions on `context`, those about the session with `options`' values.
pub fn register(context: &SessionContext, options: &QueryOptions) {
    let zone = options.time_zone.clone().unwrap_or_else(|| "UTC".into());
    context.register_udf(ScalarUDF::new_from_impl(session::Constant::text(
        "current_timezone",
        zone,
    )));
}
