//! Trino's JSON functions over JSON text (Shoal has no JSON type: a JSON value is its text):
//! `json_extract_scalar`, `json_extract`, `json_array_length`, `json_parse`, `json_format`.
//! Paths are the JSONPath subset Trino documents: `$`, `.name`, `["name"]` and `[index]`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    ExtractScalar,
    Extract,
    ArrayLength,
    Parse,
    Format,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Json {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl Json {
    pub fn new(name: &'static str, kind: Kind) -> Self {
        let arguments = match kind {
            Kind::ExtractScalar | Kind::Extract => vec![DataType::Utf8, DataType::Utf8],
            Kind::ArrayLength | Kind::Parse | Kind::Format => vec![DataType::Utf8],
        };
        Json {
            name,
            kind,
            signature: Signature::exact(arguments, Volatility::Immutable),
        }
    }
}

/// One step of a path.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A JSONPath of the subset Trino documents, or None when it is not one.
fn path(text: &str) -> Option<Vec<Step>> {
    let mut rest = text.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inside = after[..end].trim();
            let quoted = inside
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inside.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
            steps.push(match quoted {
                Some(key) => Step::Key(key.to_string()),
                None => Step::Index(inside.parse().ok()?),
            });
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn at<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(value, |value, step| match step {
        Step::Key(key) => value.as_object()?.get(key),
        Step::Index(index) => value.as_array()?.get(*index),
    })
}

/// The answer of `kind` for one JSON text (and path).
fn one(kind: Kind, json: &str, path_text: Option<&str>) -> Result<Option<String>> {
    let parsed: Option<Value> = serde_json::from_str(json).ok();
    if kind == Kind::Parse {
        return match parsed {
            Some(value) => Ok(Some(value.to_string())),
            None => exec_err!("Cannot convert value to JSON: '{json}'"),
        };
    }
    let Some(value) = parsed else {
        return Ok(None);
    };
    Ok(match kind {
        Kind::Format => Some(value.to_string()),
        Kind::ArrayLength => value.as_array().map(|a| a.len().to_string()),
        Kind::ExtractScalar | Kind::Extract => {
            let Some(steps) = path_text.and_then(path) else {
                return exec_err!("Invalid JSON path: '{}'", path_text.unwrap_or_default());
            };
            match (kind, at(&value, &steps)) {
                (_, None) => None,
                (Kind::Extract, Some(found)) => Some(found.to_string()),
                (_, Some(Value::String(text))) => Some(text.clone()),
                (_, Some(Value::Number(number))) => Some(number.to_string()),
                (_, Some(Value::Bool(flag))) => Some(flag.to_string()),
                (_, Some(_)) => None,
            }
        }
        Kind::Parse => None,
    })
}

impl ScalarUDFImpl for Json {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::ArrayLength => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(texts) = arrays.first() else {
            return plan_err!("{} takes JSON text", self.name);
        };
        let texts = as_string_array(texts)?;
        let paths = match arrays.get(1) {
            Some(paths) => Some(as_string_array(paths)?),
            None => None,
        };
        let mut answers = Vec::with_capacity(texts.len());
        for row in 0..texts.len() {
            if texts.is_null(row) || paths.is_some_and(|p| p.is_null(row)) {
                answers.push(None);
                continue;
            }
            let path_text = paths.map(|p| p.value(row));
            answers.push(one(self.kind, texts.value(row), path_text)?);
        }
        let array: ArrayRef = match self.kind {
            Kind::ArrayLength => Arc::new(Int64Array::from(
                answers
                    .into_iter()
                    .map(|a| a.and_then(|n| n.parse().ok()))
                    .collect::<Vec<Option<i64>>>(),
            )),
            _ => Arc::new(StringArray::from(answers)),
        };
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_trinos_subset() {
        assert_eq!(path("$"), Some(vec![]));
        assert_eq!(
            path("$.store.book[0][\"title\"]"),
            Some(vec![
                Step::Key("store".into()),
                Step::Key("book".into()),
                Step::Index(0),
                Step::Key("title".into())
            ])
        );
        assert_eq!(path("store"), None);
        assert_eq!(path("$."), None);
        assert_eq!(path("$[x]"), None);
    }

    #[test]
    fn scalars_and_values_as_trino_extracts_them() {
        let json = r#"{"a": {"b": [1, "two", true, null, {"c": 3}]}}"#;
        let get = |kind, p: &str| one(kind, json, Some(p)).unwrap();
        assert_eq!(get(Kind::ExtractScalar, "$.a.b[1]"), Some("two".into()));
        assert_eq!(get(Kind::ExtractScalar, "$.a.b[0]"), Some("1".into()));
        assert_eq!(get(Kind::ExtractScalar, "$.a.b[4]"), None, "not a scalar");
        assert_eq!(get(Kind::Extract, "$.a.b[4]"), Some(r#"{"c":3}"#.into()));
        assert_eq!(get(Kind::Extract, "$.missing"), None);
        assert_eq!(
            one(Kind::ArrayLength, "[1, 2, 3]", None).unwrap(),
            Some("3".into())
        );
        assert_eq!(one(Kind::ArrayLength, "{}", None).unwrap(), None);
        assert_eq!(
            one(Kind::ExtractScalar, "not json", Some("$")).unwrap(),
            None
        );
        assert!(one(Kind::Parse, "not json", None).is_err());
        assert!(one(Kind::ExtractScalar, json, Some("a.b")).is_err());
    }
}
