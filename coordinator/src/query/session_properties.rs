//! Session properties as Trino has them: the ones Shoal knows, their types, defaults (the
//! cluster's `query.*` settings) and descriptions; checking the values a client sets; and
//! what a session makes of a query's [`QueryOptions`], which its driver applies.

use std::collections::BTreeMap;
use std::str::FromStr;

use shoal_engine::options::{QueryOptions, TimeLimit};
use shoal_proto::client::QueryError;
use shoal_proto::properties::{parse_data_size, parse_duration};

use crate::config::CoordinatorConfig;
use crate::protocol::errors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Such as `10s`, `1.5m`, `100d`.
    Duration,
    /// Such as `512MB`, `2GB`; empty for no limit.
    DataSize,
    /// An IANA zone name or an offset such as `+05:30`.
    TimeZone,
    /// A whole number from 1.
    Count,
}

/// One session property.
#[derive(Debug)]
pub struct Property {
    pub name: &'static str,
    kind: Kind,
    pub description: &'static str,
    /// Settable, but not listed by SHOW SESSION (as in Trino).
    hidden: bool,
}

/// Every property, by name.
const PROPERTIES: &[Property] = &[
    Property {
        name: "query_max_execution_time",
        kind: Kind::Duration,
        description: "Maximum execution time of a query",
        hidden: false,
    },
    Property {
        name: "query_max_memory_per_node",
        kind: Kind::DataSize,
        description: "Maximum amount of memory a query can use per node",
        hidden: false,
    },
    Property {
        name: "query_max_run_time",
        kind: Kind::Duration,
        description: "Maximum run time of a query (includes the queueing time)",
        hidden: false,
    },
    Property {
        name: "task_concurrency",
        kind: Kind::Count,
        description: "Default number of local parallel jobs per worker",
        hidden: false,
    },
    Property {
        name: "time_zone_id",
        kind: Kind::TimeZone,
        description: "Time Zone Id for the current session",
        hidden: true,
    },
];

impl Property {
    /// The SQL type of the property's values, as SHOW SESSION prints it.
    pub fn sql_type(&self) -> &'static str {
        match self.kind {
            Kind::Count => "integer",
            _ => "varchar",
        }
    }
}

/// The session property `name`, or the error Trino gives for one that does not exist.
pub fn find(name: &str) -> Result<&'static Property, QueryError> {
    PROPERTIES.iter().find(|p| p.name == name).ok_or_else(|| {
        errors::invalid_session_property(format!("Session property '{name}' does not exist"))
    })
}

/// A duration as Trino prints one: in the largest unit that holds at least one, with two
/// decimals (`100.00d`, `1.50h`, `0.00ns`).
fn trino_duration(value: &str) -> String {
    let Ok(duration) = parse_duration(value) else {
        return value.to_string();
    };
    let nanos = duration.as_nanos() as f64;
    let units = [
        ("ns", 1.0),
        ("us", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
        ("d", 86400e9),
    ];
    let mut chosen = units[0];
    for unit in units {
        // Fuzzy, as Trino's own: units are not exact powers of each other in floating point.
        if nanos / unit.1 > 0.9999 {
            chosen = unit;
        } else {
            break;
        }
    }
    format!("{:.2}{}", nanos / chosen.1, chosen.0)
}

/// The value `name` has when the session does not set it, as Trino prints it.
fn default_of(property: &Property, config: &CoordinatorConfig) -> String {
    let defaults = &config.session_defaults;
    match property.name {
        "query_max_run_time" => trino_duration(&defaults.max_run_time),
        "query_max_execution_time" => trino_duration(&defaults.max_execution_time),
        "query_max_memory_per_node" => defaults.max_memory_per_node.clone(),
        // DataFusion's default: a partition per core of the node running the stage.
        "task_concurrency" => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string(),
        _ => String::new(),
    }
}

/// Check that a time zone is one DataFusion and Trino take: an IANA name, `UTC`, or an
/// offset such as `+05:30`.
pub fn check_time_zone(zone: &str) -> Result<(), QueryError> {
    datafusion::arrow::array::timezone::Tz::from_str(zone)
        .map(|_| ())
        .map_err(|_| errors::invalid_session_property(format!("Time zone not supported: {zone}")))
}

/// Check that `value` is one session property `name` takes.
pub fn check(name: &str, value: &str) -> Result<(), QueryError> {
    let property = find(name)?;
    let invalid = |reason: String| {
        errors::invalid_session_property(format!(
            "Unable to set session property '{name}' to '{value}': {reason}"
        ))
    };
    match property.kind {
        Kind::Duration => parse_duration(value).map(|_| ()).map_err(invalid),
        Kind::DataSize => parse_data_size(value).map(|_| ()).map_err(invalid),
        Kind::TimeZone => check_time_zone(value),
        Kind::Count => match value.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err(invalid("it must be a whole number of at least 1".into())),
        },
    }
}

/// Check every property a client's session sets.
pub fn check_all(properties: &BTreeMap<String, String>) -> Result<(), QueryError> {
    properties
        .iter()
        .try_for_each(|(name, value)| check(name, value))
}

/// The rows of SHOW SESSION: name, value, default, type and description of every property
/// that is not hidden.
pub fn show(properties: &BTreeMap<String, String>, config: &CoordinatorConfig) -> Vec<[String; 5]> {
    PROPERTIES
        .iter()
        .filter(|p| !p.hidden)
        .map(|p| {
            let default = default_of(p, config);
            let value = properties.get(p.name).cloned().unwrap_or(default.clone());
            [
                p.name.to_string(),
                value,
                default,
                p.sql_type().to_string(),
                p.description.to_string(),
            ]
        })
        .collect()
}

/// What the session (its properties, then the cluster's defaults; its time zone header; its
/// user) makes of a query's options. Values were checked when the session was read.
pub fn options(
    properties: &BTreeMap<String, String>,
    time_zone: Option<&str>,
    user: &str,
    config: &CoordinatorConfig,
) -> QueryOptions {
    let value = |name: &str| {
        properties.get(name).cloned().or_else(|| {
            find(name)
                .ok()
                .map(|p| default_of(p, config))
                .filter(|v| !v.is_empty())
        })
    };
    let limit = |name: &str| {
        let shown = value(name)?;
        let ms = parse_duration(&shown).ok()?.as_millis() as u64;
        Some(TimeLimit { ms, shown })
    };
    QueryOptions {
        max_run: limit("query_max_run_time"),
        max_execution: limit("query_max_execution_time"),
        max_memory_bytes: value("query_max_memory_per_node").and_then(|v| parse_data_size(&v).ok()),
        // A time zone set as a property wins over the client's header, as in Trino.
        time_zone: properties
            .get("time_zone_id")
            .cloned()
            .or_else(|| time_zone.map(str::to_string)),
        user: Some(user.to_string()),
        // Only a value the session sets: otherwise each node keeps its own default.
        target_partitions: properties
            .get("task_concurrency")
            .and_then(|v| v.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_properties_and_bad_values_are_errors_as_in_trino() {
        let error = check("no_such_property", "1").unwrap_err();
        assert_eq!(error.error_name, "INVALID_SESSION_PROPERTY");
        assert_eq!(
            error.message,
            "Session property 'no_such_property' does not exist"
        );
        assert!(check("query_max_run_time", "10s").is_ok());
        assert!(check("query_max_run_time", "1.5m").is_ok());
        let error = check("query_max_run_time", "ten").unwrap_err();
        assert_eq!(error.error_code, 14);
        assert!(check("query_max_memory_per_node", "1GB").is_ok());
        assert!(check("query_max_memory_per_node", "1 gigabyte").is_err());
        assert!(check("time_zone_id", "America/New_York").is_ok());
        assert!(check("time_zone_id", "+05:30").is_ok());
        assert!(check("time_zone_id", "Mars/Olympus").is_err());
    }

    #[test]
    fn durations_print_as_in_trino() {
        assert_eq!(trino_duration("100d"), "100.00d");
        assert_eq!(trino_duration("90m"), "1.50h");
        assert_eq!(trino_duration("1.5m"), "1.50m");
        assert_eq!(trino_duration("500ms"), "500.00ms");
        assert_eq!(trino_duration("0s"), "0.00ns");
    }
}
