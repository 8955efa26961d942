//! Arrow types as Trino types: the SQL text and the type signature a client uses to decode
//! values.

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use shoal_proto::client::{Column, NamedTypeSignature, RowFieldName, TypeArgument, TypeSignature};

/// Trino's bound of an unbounded varchar.
const UNBOUNDED_VARCHAR: i64 = 2_147_483_647;

pub fn column(field: &Field) -> Column {
    let type_signature = signature(field.data_type());
    Column {
        name: field.name().clone(),
        type_name: sql_name(&type_signature),
        type_signature,
    }
}

fn simple(raw: &str) -> TypeSignature {
    TypeSignature {
        raw_type: raw.to_string(),
        arguments: Vec::new(),
    }
}

fn with_longs(raw: &str, values: &[i64]) -> TypeSignature {
    TypeSignature {
        raw_type: raw.to_string(),
        arguments: values.iter().map(|v| TypeArgument::Long(*v)).collect(),
    }
}

fn precision(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

pub fn signature(data_type: &DataType) -> TypeSignature {
    match data_type {
        DataType::Null => simple("unknown"),
        DataType::Boolean => simple("boolean"),
        DataType::Int8 => simple("tinyint"),
        DataType::Int16 | DataType::UInt8 => simple("smallint"),
        DataType::Int32 | DataType::UInt16 => simple("integer"),
        DataType::Int64 | DataType::UInt32 => simple("bigint"),
        DataType::UInt64 => with_longs("decimal", &[20, 0]),
        DataType::Float16 | DataType::Float32 => simple("real"),
        DataType::Float64 => simple("double"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => with_longs("decimal", &[i64::from(*p), i64::from(*s)]),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            with_longs("varchar", &[UNBOUNDED_VARCHAR])
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => simple("varbinary"),
        DataType::Date32 | DataType::Date64 => simple("date"),
        DataType::Timestamp(unit, None) => with_longs("timestamp", &[precision(unit)]),
        DataType::Timestamp(unit, Some(_)) => {
            with_longs("timestamp with time zone", &[precision(unit)])
        }
        DataType::Time32(unit) | DataType::Time64(unit) => with_longs("time", &[precision(unit)]),
        DataType::Duration(_) | DataType::Interval(_) => simple("interval day to second"),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => TypeSignature {
            raw_type: "array".into(),
            arguments: vec![TypeArgument::Type(signature(item.data_type()))],
        },
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => TypeSignature {
                raw_type: "map".into(),
                arguments: vec![
                    TypeArgument::Type(signature(fields[0].data_type())),
                    TypeArgument::Type(signature(fields[1].data_type())),
                ],
            },
            _ => with_longs("varchar", &[UNBOUNDED_VARCHAR]),
        },
        DataType::Struct(fields) => TypeSignature {
            raw_type: "row".into(),
            arguments: fields
                .iter()
                .map(|f| {
                    TypeArgument::NamedType(NamedTypeSignature {
                        field_name: Some(RowFieldName {
                            name: f.name().clone(),
                        }),
                        type_signature: signature(f.data_type()),
                    })
                })
                .collect(),
        },
        DataType::Dictionary(_, value) => signature(value),
        DataType::RunEndEncoded(_, values) => signature(values.data_type()),
        _ => with_longs("varchar", &[UNBOUNDED_VARCHAR]),
    }
}

/// The SQL text of a signature: `decimal(10,2)`, `array(bigint)`, `row(a bigint, b varchar)`,
/// `timestamp(3) with time zone`.
pub fn sql_name(signature: &TypeSignature) -> String {
    let raw = signature.raw_type.as_str();
    if signature.arguments.is_empty() {
        return raw.to_string();
    }
    if raw == "varchar" && signature.arguments == [TypeArgument::Long(UNBOUNDED_VARCHAR)] {
        return "varchar".into();
    }
    let arguments: Vec<String> = signature
        .arguments
        .iter()
        .map(|argument| match argument {
            TypeArgument::Long(value) => value.to_string(),
            TypeArgument::Type(inner) => sql_name(inner),
            TypeArgument::NamedType(named) => match &named.field_name {
                Some(field) => format!("{} {}", field.name, sql_name(&named.type_signature)),
                None => sql_name(&named.type_signature),
            },
        })
        .collect();
    match raw.strip_suffix(" with time zone") {
        Some(base) => format!("{base}({}) with time zone", arguments.join(",")),
        None if raw == "row" || raw == "map" => format!("{raw}({})", arguments.join(", ")),
        None => format!("{raw}({})", arguments.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::Fields;

    use super::*;

    #[test]
    fn sql_names_of_common_types() {
        let name = |t: DataType| sql_name(&signature(&t));
        assert_eq!(name(DataType::Int64), "bigint");
        assert_eq!(name(DataType::Utf8), "varchar");
        assert_eq!(name(DataType::Decimal128(10, 2)), "decimal(10,2)");
        assert_eq!(
            name(DataType::Timestamp(TimeUnit::Microsecond, None)),
            "timestamp(6)"
        );
        assert_eq!(
            name(DataType::Timestamp(
                TimeUnit::Millisecond,
                Some("UTC".into())
            )),
            "timestamp(3) with time zone"
        );
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        assert_eq!(name(DataType::List(item)), "array(bigint)");
        let fields = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        assert_eq!(name(DataType::Struct(fields)), "row(a integer, b varchar)");
    }
}
