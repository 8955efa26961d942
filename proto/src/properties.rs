//! openLooKeng-style `.properties` files: parsing, and typed reading against a declared list of
//! keys so that unknown keys, bad values and missing required keys are reported with the file,
//! line, key and reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub reason: String,
}

impl ConfigError {
    fn describe(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        if let Some(key) = &self.key {
            out.push_str(&format!(": {key}"));
        }
        out.push_str(&format!(": {}", self.reason));
        out
    }
}

/// One declared key: its name, its default (None: required), and what it means.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub key: &'static str,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// A parsed file: each key with its value and line.
#[derive(Debug, Clone, Default)]
pub struct PropertiesFile {
    pub path: PathBuf,
    pub entries: BTreeMap<String, (String, usize)>,
}

impl PropertiesFile {
    /// Read and parse `path`; a missing file is an empty one when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(PropertiesFile {
                path: path.to_path_buf(),
                entries: BTreeMap::new(),
            }),
            Err(e) => Err(ConfigError {
                file: path.display().to_string(),
                line: None,
                key: None,
                reason: format!("cannot read: {e}"),
            }),
        }
    }

    /// Parse `key=value` (or `key: value`) lines; `#` and `!` start comments; a trailing
    /// backslash continues a value on the next line. A key given twice is an error.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let error = |line: usize, key: Option<&str>, reason: String| ConfigError {
            file: file.clone(),
            line: Some(line),
            key: key.map(str::to_string),
            reason,
        };
        let mut entries = BTreeMap::new();
        let mut lines = text.lines().enumerate();
        while let Some((index, raw)) = lines.next() {
            let number = index + 1;
            let mut logical = raw.trim_start().to_string();
            if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
                continue;
            }
            while logical.ends_with('\\') {
                logical.pop();
                match lines.next() {
                    Some((_, next)) => logical.push_str(next.trim_start()),
                    None => break,
                }
            }
            let Some(split) = logical.find(['=', ':']) else {
                return Err(error(
                    number,
                    None,
                    format!("expected key=value, found {logical:?}"),
                ));
            };
            let key = logical[..split].trim();
            let value = logical[split + 1..].trim();
            if key.is_empty() {
                return Err(error(number, None, "empty key".into()));
            }
            if let Some((_, first)) = entries.get(key) {
                return Err(error(
                    number,
                    Some(key),
                    format!("given twice (first on line {first})"),
                ));
            }
            entries.insert(key.to_string(), (value.to_string(), number));
        }
        Ok(PropertiesFile {
            path: path.to_path_buf(),
            entries,
        })
    }
}

/// Typed reading of one file against its declared keys.
pub struct Reader<'a> {
    file: &'a PropertiesFile,
    specs: &'a [KeySpec],
}

impl<'a> Reader<'a> {
    /// Check that every key in `file` is declared in `specs`.
    pub fn new(file: &'a PropertiesFile, specs: &'a [KeySpec]) -> Result<Self, ConfigError> {
        for (key, (_, line)) in &file.entries {
            if !specs.iter().any(|s| s.key == key) {
                return Err(ConfigError {
                    file: file.path.display().to_string(),
                    line: Some(*line),
                    key: Some(key.clone()),
                    reason: "unknown key".into(),
                });
            }
        }
        Ok(Reader { file, specs })
    }

    fn fail(&self, key: &str, reason: String) -> ConfigError {
        ConfigError {
            file: self.file.path.display().to_string(),
            line: self.file.entries.get(key).map(|(_, line)| *line),
            key: Some(key.to_string()),
            reason,
        }
    }

    /// The raw value: the file's, else the declared default; a required key must be given.
    pub fn raw(&self, key: &str) -> Result<String, ConfigError> {
        if let Some((value, _)) = self.file.entries.get(key) {
            return Ok(value.clone());
        }
        let spec = self
            .specs
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| self.fail(key, "read but not declared (a bug in Shoal)".into()))?;
        spec.default
            .map(str::to_string)
            .ok_or_else(|| self.fail(key, "required but not set".into()))
    }

    pub fn string(&self, key: &str) -> Result<String, ConfigError> {
        self.raw(key)
    }

    pub fn non_empty(&self, key: &str) -> Result<String, ConfigError> {
        let value = self.raw(key)?;
        if value.is_empty() {
            return Err(self.fail(key, "must not be empty".into()));
        }
        Ok(value)
    }

    pub fn u64(&self, key: &str) -> Result<u64, ConfigError> {
        let value = self.raw(key)?;
        value
            .parse()
            .map_err(|_| self.fail(key, format!("expected a whole number, found {value:?}")))
    }

    pub fn u16(&self, key: &str) -> Result<u16, ConfigError> {
        let value = self.raw(key)?;
        value.parse().map_err(|_| {
            self.fail(
                key,
                format!("expected a port number (0-65535), found {value:?}"),
            )
        })
    }

    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.raw(key)?.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(self.fail(key, format!("expected true or false, found {other:?}"))),
        }
    }

    pub fn duration(&self, key: &str) -> Result<Duration, ConfigError> {
        let value = self.raw(key)?;
        parse_duration(&value).map_err(|reason| self.fail(key, reason))
    }

    /// A value that must be one of `allowed`.
    pub fn choice(&self, key: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let value = self.raw(key)?;
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(self.fail(key, format!("expected one of {allowed:?}, found {value:?}")))
        }
    }

    /// Fail with a reason about `key`'s value (for checks across keys).
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        self.fail(key, reason.into())
    }
}

/// `value` as a number and the unit after it (`what`, with `units`, like `examples`).
fn number_and_unit<'a>(
    value: &'a str,
    what: &str,
    units: &str,
    examples: &str,
) -> Result<(f64, &'a str), String> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("expected {what} with a unit ({units}), found {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number = number
        .parse()
        .map_err(|_| format!("expected {what} such as {examples}, found {value:?}"))?;
    Ok((number, unit.trim()))
}

/// Parse `500ms`, `1s`, `1.5s`, `5m`, `2h`, `1d`; a unit is required.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (number, unit) = number_and_unit(value, "a duration", "ms, s, m, h, d", "500ms or 5s")?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => return Err(format!("unknown duration unit {other:?} in {value:?}")),
    };
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(format!("duration out of range: {value:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A data size as Trino writes it: a number and one of B, kB, MB, GB, TB, PB (powers of
/// 1024), such as `512MB` or `1.5GB`.
pub fn parse_data_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let (number, unit) = number_and_unit(
        value,
        "a data size",
        "B, kB, MB, GB, TB, PB",
        "512MB or 2GB",
    )?;
    let scale: f64 = match unit {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0f64.powi(4),
        "PB" => 1024.0f64.powi(5),
        other => return Err(format!("unknown data size unit {other:?} in {value:?}")),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("data size out of range: {value:?}"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes_are_powers_of_1024() {
        assert_eq!(parse_data_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_data_size("1.5kB"), Ok(1536));
        assert_eq!(parse_data_size("2GB"), Ok(2 << 30));
        assert!(parse_data_size("2gb").is_err());
        assert!(parse_data_size("12").is_err());
        assert!(parse_data_size("GB").is_err());
    }

    const SPECS: &[KeySpec] = &[
        KeySpec {
            key: "a.port",
            default: Some("8080"),
            doc: "",
        },
        KeySpec {
            key: "a.name",
            default: None,
            doc: "",
        },
        KeySpec {
            key: "a.wait",
            default: Some("1s"),
            doc: "",
        },
    ];

    fn parse(text: &str) -> Result<PropertiesFile, ConfigError> {
        PropertiesFile::parse(Path::new("etc/x.properties"), text)
    }

    #[test]
    fn parses_comments_separators_and_continuations() {
        let file = parse("# comment\n! other\n\na.name = one \\\n  two\na.port: 9090\n").unwrap();
        let reader = Reader::new(&file, SPECS).unwrap();
        assert_eq!(reader.string("a.name").unwrap(), "one two");
        assert_eq!(reader.u16("a.port").unwrap(), 9090);
        assert_eq!(reader.duration("a.wait").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn reports_file_line_key_and_reason() {
        let file = parse("a.name=x\na.port=eighty\n").unwrap();
        let error = Reader::new(&file, SPECS)
            .unwrap()
            .u16("a.port")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "etc/x.properties:2: a.port: expected a port number (0-65535), found \"eighty\""
        );
        let file = parse("a.name=x\nb.typo=1\n").unwrap();
        let error = Reader::new(&file, SPECS).err().unwrap();
        assert_eq!(error.to_string(), "etc/x.properties:2: b.typo: unknown key");
        let file = parse("a.port=1\n").unwrap();
        let error = Reader::new(&file, SPECS)
            .unwrap()
            .string("a.name")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "etc/x.properties: a.name: required but not set"
        );
        let error = parse("a.name=1\na.name=2\n").unwrap_err();
        assert!(error.to_string().contains("given twice (first on line 1)"));
        assert!(parse("just words\n")
            .unwrap_err()
            .to_string()
            .contains("expected key=value"));
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
