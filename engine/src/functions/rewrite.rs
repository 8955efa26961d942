//! Trino's functions that are another DataFusion expression with Trino's meaning: each is
//! registered under Trino's name and rewritten by DataFusion's simplifier while the query is
//! planned, so no new kernel runs and the stages on other workers never see it.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, IntervalMonthDayNano, TimeUnit};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::functions::expr_fn::{
    concat, contains, date_part, date_trunc, regexp_match, regexp_replace, round, to_char,
};
use datafusion::functions_nested::expr_fn::{array_element, array_has, cardinality, map_extract};
use datafusion::functions_nested::string::string_to_array_udf;
use datafusion::logical_expr::expr::Case;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{
    cast, lit, ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::datetime_format;
use crate::types::{signature, sql_name};

/// What a function is rewritten to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `year(d)` and its kin: `date_part(part, d)`, as bigint.
    Part(&'static str),
    /// `date_add(unit, n, t)`: `t` plus `n` units.
    DateAdd,
    /// `date_diff(unit, t1, t2)`: whole units from `t1` to `t2`.
    DateDiff,
    /// `typeof(x)`: the Trino name of `x`'s type.
    TypeOf,
    /// `if(condition, a[, b])`.
    If,
    /// `regexp_extract(s, pattern[, group])`: the first match, or its group.
    RegexpExtract,
    /// `regexp_replace(s, pattern[, replacement])`: every match replaced.
    RegexpReplace,
    /// `element_at(array, i)` (1-based, negative from the end) or `element_at(map, key)`.
    ElementAt,
    /// `contains(array, x)`; on strings, DataFusion's `contains`.
    Contains,
    /// `split(s, delimiter)`: the parts as an array.
    Split,
    /// `date_format(t, format)`: MySQL's format language, through `to_char`.
    DateFormat,
    /// `format_datetime(t, pattern)`: Joda-Time's pattern language, through `to_char`.
    FormatDatetime,
    /// `to_unixtime(t)`: seconds since 1970 as a double.
    ToUnixtime,
    /// `from_unixtime(seconds)`: a timestamp(3), fractions of seconds kept.
    FromUnixtime,
    /// `at_timezone(t, zone)`: the same instant in `zone`.
    AtTimezone,
    /// `cardinality(array or map)`, as a bigint.
    Cardinality,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Rewrite {
    name: &'static str,
    kind: Kind,
    signature: Signature,
    /// The session's time zone: a timestamp without one is a time there.
    zone: String,
}

impl Rewrite {
    /// The rewrite for a session in time zone `zone`.
    pub fn in_zone(mut self, zone: &str) -> Self {
        self.zone = zone.to_string();
        self
    }

    pub fn new(name: &'static str, kind: Kind) -> Self {
        let arities: &[usize] = match kind {
            Kind::Part(_)
            | Kind::TypeOf
            | Kind::ToUnixtime
            | Kind::FromUnixtime
            | Kind::Cardinality => &[1],
            Kind::ElementAt
            | Kind::Contains
            | Kind::Split
            | Kind::DateFormat
            | Kind::FormatDatetime
            | Kind::AtTimezone => &[2],
            Kind::DateAdd | Kind::DateDiff => &[3],
            Kind::If | Kind::RegexpExtract | Kind::RegexpReplace => &[2, 3],
        };
        let signature = if kind == Kind::If {
            Signature::user_defined(Volatility::Immutable)
        } else {
            Signature::one_of(
                arities.iter().map(|n| TypeSignature::Any(*n)).collect(),
                Volatility::Immutable,
            )
        };
        Rewrite {
            name,
            kind,
            signature,
            zone: "UTC".into(),
        }
    }
}

/// The text of a literal argument (a unit name), lower case.
fn unit_of(expr: &Expr, function: &str) -> Result<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) => Ok(text.to_ascii_lowercase()),
        _ => plan_err!("{function} takes its unit as a string literal, such as 'day'"),
    }
}

/// The text of a literal argument, as written.
fn text_of(expr: &Expr, function: &str) -> Result<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) => Ok(text.clone()),
        _ => plan_err!("{function} takes a string literal as its second argument"),
    }
}

/// Seconds in one unit that has a fixed length.
fn fixed_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "millisecond" => 0.001,
        "second" => 1.0,
        "minute" => 60.0,
        "hour" => 3600.0,
        "day" => 86400.0,
        "week" => 7.0 * 86400.0,
        _ => return None,
    })
}

/// Months in one unit measured in months.
fn months(unit: &str) -> Option<i32> {
    Some(match unit {
        "month" => 1,
        "quarter" => 3,
        "year" => 12,
        _ => return None,
    })
}

fn float(expr: Expr) -> Expr {
    cast(expr, DataType::Float64)
}

fn epoch(t: Expr) -> Expr {
    float(date_part(lit("epoch"), t))
}

/// `t` as a timestamp (`date_trunc` takes no dates).
fn as_timestamp(t: Expr, data_type: &DataType) -> Expr {
    match data_type {
        DataType::Date32 | DataType::Date64 => cast(
            t,
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
        ),
        _ => t,
    }
}

/// `t`'s place within its month: seconds since the month began.
fn within_month(t: Expr, data_type: &DataType) -> Expr {
    epoch(t.clone()) - epoch(date_trunc(lit("month"), as_timestamp(t, data_type)))
}

fn month_number(t: Expr) -> Expr {
    float(date_part(lit("year"), t.clone())) * lit(12.0) + float(date_part(lit("month"), t))
}

fn date_diff(
    unit: &str,
    (t1, type1): (Expr, DataType),
    (t2, type2): (Expr, DataType),
) -> Result<Expr> {
    if let Some(seconds) = fixed_seconds(unit) {
        let diff = (epoch(t2) - epoch(t1)) / lit(seconds);
        return Ok(cast(trunc(diff), DataType::Int64));
    }
    let Some(per_unit) = months(unit) else {
        return plan_err!("date_diff does not know the unit '{unit}'");
    };
    // Whole months, less one where the later point has not reached the earlier one's place
    // within its month (so January 31 to February 29 is 0 months, as in Trino).
    let months = month_number(t2.clone()) - month_number(t1.clone());
    let short =
        Expr::Case(Case {
            expr: None,
            when_then_expr: vec![
                (
                    Box::new(months.clone().gt(lit(0.0)).and(
                        within_month(t2.clone(), &type2).lt(within_month(t1.clone(), &type1)),
                    )),
                    Box::new(lit(1.0)),
                ),
                (
                    Box::new(
                        months
                            .clone()
                            .lt(lit(0.0))
                            .and(within_month(t2, &type2).gt(within_month(t1, &type1))),
                    ),
                    Box::new(lit(-1.0)),
                ),
            ],
            else_expr: Some(Box::new(lit(0.0))),
        });
    Ok(cast(
        trunc((months - short) / lit(f64::from(per_unit))),
        DataType::Int64,
    ))
}

fn trunc(expr: Expr) -> Expr {
    datafusion::functions::expr_fn::trunc(vec![expr])
}

/// `n` units as an interval, for a literal `n`; else `n` times one unit.
fn interval(unit: &str, n: Expr) -> Result<Expr> {
    let one = match unit {
        "millisecond" => IntervalMonthDayNano::new(0, 0, 1_000_000),
        "second" => IntervalMonthDayNano::new(0, 0, 1_000_000_000),
        "minute" => IntervalMonthDayNano::new(0, 0, 60_000_000_000),
        "hour" => IntervalMonthDayNano::new(0, 0, 3_600_000_000_000),
        "day" => IntervalMonthDayNano::new(0, 1, 0),
        "week" => IntervalMonthDayNano::new(0, 7, 0),
        "month" => IntervalMonthDayNano::new(1, 0, 0),
        "quarter" => IntervalMonthDayNano::new(3, 0, 0),
        "year" => IntervalMonthDayNano::new(12, 0, 0),
        _ => return plan_err!("date_add does not know the unit '{unit}'"),
    };
    let count = match &n {
        Expr::Literal(value, _) if !value.is_null() => value.cast_to(&DataType::Int64)?,
        // DataFusion multiplies no interval by a number: the interval is written as text.
        _ => {
            let (times, unit_text) = match unit {
                "millisecond" => (1, "milliseconds"),
                "second" => (1, "seconds"),
                "minute" => (1, "minutes"),
                "hour" => (1, "hours"),
                "day" => (1, "days"),
                "week" => (7, "days"),
                "month" => (1, "months"),
                "quarter" => (3, "months"),
                _ => (12, "months"),
            };
            let count = cast(n, DataType::Int64) * lit(times as i64);
            let text = concat(vec![
                cast(count, DataType::Utf8),
                lit(format!(" {unit_text}")),
            ]);
            return Ok(cast(
                text,
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
            ));
        }
    };
    let ScalarValue::Int64(Some(count)) = count else {
        return plan_err!("date_add takes a whole number of units");
    };
    let times = |v: i64| -> Result<i64> {
        v.checked_mul(count).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("date_add: too many units".into())
        })
    };
    let months = i32::try_from(times(i64::from(one.months))?).map_err(|_| {
        datafusion::error::DataFusionError::Plan("date_add: too many months".into())
    })?;
    let days = i32::try_from(times(i64::from(one.days))?)
        .map_err(|_| datafusion::error::DataFusionError::Plan("date_add: too many days".into()))?;
    Ok(lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(months, days, times(one.nanoseconds)?),
    ))))
}

fn one_based(index: Expr) -> Expr {
    match index {
        Expr::Literal(ScalarValue::Int64(Some(g)), _) => lit(g + 1),
        other => cast(other, DataType::Int64) + lit(1i64),
    }
}

impl ScalarUDFImpl for Rewrite {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // Only `if` coerces: its two values to one type.
        match arg_types {
            [_, a] => Ok(vec![DataType::Boolean, a.clone()]),
            [_, a, b] => {
                let common = if a == b {
                    a.clone()
                } else {
                    comparison_coercion(a, b).unwrap_or_else(|| a.clone())
                };
                Ok(vec![DataType::Boolean, common.clone(), common])
            }
            _ => plan_err!("if takes a condition and one or two values"),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Part(_) | Kind::DateDiff | Kind::Cardinality => DataType::Int64,
            Kind::DateAdd => args[2].clone(),
            Kind::TypeOf | Kind::RegexpExtract => DataType::Utf8,
            Kind::RegexpReplace => match &args[0] {
                DataType::LargeUtf8 => DataType::LargeUtf8,
                DataType::Utf8View => DataType::Utf8View,
                _ => DataType::Utf8,
            },
            Kind::If => args[1].clone(),
            Kind::DateFormat | Kind::FormatDatetime => DataType::Utf8,
            Kind::ToUnixtime => DataType::Float64,
            Kind::FromUnixtime => DataType::Timestamp(TimeUnit::Millisecond, None),
            // The zone is known once the literal is read (see `simplify`).
            Kind::AtTimezone => match &args[0] {
                DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("UTC".into())),
                _ => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            },
            Kind::Contains => DataType::Boolean,
            Kind::Split => DataType::new_list(DataType::Utf8, true),
            Kind::ElementAt => match &args[0] {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.data_type().clone()
                }
                DataType::Map(entries, _) => match entries.data_type() {
                    DataType::Struct(fields) if fields.len() == 2 => fields[1].data_type().clone(),
                    other => return plan_err!("element_at of a map with entries {other}"),
                },
                other => return plan_err!("element_at takes an array or a map, not {other}"),
            },
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let mut data_type = self.return_type(&types)?;
        // at_timezone's type names the zone its literal gives.
        if let (Kind::AtTimezone, DataType::Timestamp(unit, _)) = (self.kind, &data_type) {
            if let Some(Some(
                ScalarValue::Utf8(Some(zone))
                | ScalarValue::Utf8View(Some(zone))
                | ScalarValue::LargeUtf8(Some(zone)),
            )) = args.scalar_arguments.get(1)
            {
                data_type = DataType::Timestamp(*unit, Some(zone.as_str().into()));
            }
        }
        Ok(Arc::new(Field::new(self.name, data_type, true)))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("{} is rewritten while the query is planned", self.name)
    }

    fn simplify(&self, mut args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let rewritten = match self.kind {
            Kind::Part(part) => cast(date_part(lit(part), args.remove(0)), DataType::Int64),
            Kind::DateAdd => {
                let unit = unit_of(&args[0], "date_add")?;
                let t = args.remove(2);
                let t_type = info.get_data_type(&t)?;
                cast(t + interval(&unit, args.remove(1))?, t_type)
            }
            Kind::DateDiff => {
                let unit = unit_of(&args[0], "date_diff")?;
                let t2 = args.remove(2);
                let t1 = args.remove(1);
                let (type1, type2) = (info.get_data_type(&t1)?, info.get_data_type(&t2)?);
                date_diff(&unit, (t1, type1), (t2, type2))?
            }
            Kind::TypeOf => {
                let data_type = info.get_data_type(&args[0])?;
                lit(sql_name(&signature(&data_type)))
            }
            Kind::If => {
                let data_type = info.get_data_type(&args[1])?;
                let otherwise = match args.len() {
                    3 => args.remove(2),
                    _ => lit(ScalarValue::try_from(&data_type)?),
                };
                let then = args.remove(1);
                Expr::Case(Case {
                    expr: None,
                    when_then_expr: vec![(Box::new(args.remove(0)), Box::new(then))],
                    else_expr: Some(Box::new(otherwise)),
                })
            }
            Kind::RegexpExtract => {
                let group = if args.len() == 3 {
                    args.remove(2)
                } else {
                    lit(0i64)
                };
                let pattern = concat(vec![lit("("), args.remove(1), lit(")")]);
                let groups = regexp_match(args.remove(0), pattern, None);
                cast(array_element(groups, one_based(group)), DataType::Utf8)
            }
            Kind::RegexpReplace => {
                let data_type = info.get_data_type(&args[0])?;
                let replacement = if args.len() == 3 {
                    args.remove(2)
                } else {
                    lit("")
                };
                let pattern = args.remove(1);
                let replaced = regexp_replace(args.remove(0), pattern, replacement, Some(lit("g")));
                cast(replaced, self.return_type(&[data_type])?)
            }
            Kind::ElementAt => {
                let key = args.remove(1);
                let container = args.remove(0);
                match info.get_data_type(&container)? {
                    DataType::Map(_, _) => array_element(map_extract(container, key), lit(1i64)),
                    _ => array_element(container, key),
                }
            }
            Kind::Contains => {
                let value = args.remove(1);
                let container = args.remove(0);
                match info.get_data_type(&container)? {
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
                        array_has(container, value)
                    }
                    _ => contains(container, value),
                }
            }
            Kind::Split => cast(
                string_to_array_udf().call(args),
                DataType::new_list(DataType::Utf8, true),
            ),
            Kind::DateFormat | Kind::FormatDatetime => {
                let format = text_of(&args[1], self.name)?;
                let chrono = match self.kind {
                    Kind::DateFormat => datetime_format::from_mysql(&format)?,
                    _ => datetime_format::from_joda(&format)?,
                };
                to_char(args.remove(0), lit(chrono))
            }
            Kind::ToUnixtime => epoch(args.remove(0)),
            Kind::Cardinality => cast(cardinality(args.remove(0)), DataType::Int64),
            Kind::FromUnixtime => {
                let millis = round(vec![float(args.remove(0)) * lit(1000.0)]);
                cast(
                    cast(millis, DataType::Int64),
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                )
            }
            Kind::AtTimezone => {
                let zone = text_of(&args[1], self.name)?;
                let t = args.remove(0);
                let (unit, t) = match info.get_data_type(&t)? {
                    DataType::Timestamp(unit, Some(_)) => (unit, t),
                    DataType::Timestamp(unit, None) => (
                        unit,
                        cast(
                            t,
                            DataType::Timestamp(unit, Some(self.zone.as_str().into())),
                        ),
                    ),
                    _ => (
                        TimeUnit::Nanosecond,
                        cast(
                            t,
                            DataType::Timestamp(
                                TimeUnit::Nanosecond,
                                Some(self.zone.as_str().into()),
                            ),
                        ),
                    ),
                };
                cast(t, DataType::Timestamp(unit, Some(zone.into())))
            }
        };
        Ok(ExprSimplifyResult::Simplified(rewritten))
    }
}
