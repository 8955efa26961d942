//! The client session carried in `X-Trino-*` or `X-Presto-*` headers; answers use the family
//! the client used.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Trino,
    Presto,
}

impl Family {
    pub fn header(self, name: &str) -> String {
        match self {
            Family::Trino => format!("X-Trino-{name}"),
            Family::Presto => format!("X-Presto-{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSession {
    pub family: Family,
    pub user: String,
    pub source: Option<String>,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    /// Session properties (`X-Trino-Session`), checked against the ones Shoal knows.
    pub properties: BTreeMap<String, String>,
    /// The client's time zone (`X-Trino-Time-Zone`); the `time_zone_id` property wins.
    pub time_zone: Option<String>,
    /// The transaction the client is in (`X-Trino-Transaction-Id`, other than `NONE`).
    pub transaction_id: Option<String>,
    /// The prepared statements the client keeps, by name (`X-Trino-Prepared-Statement`).
    pub prepared: BTreeMap<String, String>,
    /// The result encoding of the spooling protocol chosen from the client's preferences
    /// (`X-Trino-Query-Data-Encoding`); None for `data` arrays.
    pub encoding: Option<shoal_proto::segments::Encoding>,
}

fn text(headers: &HeaderMap, family: Family, name: &str) -> Option<String> {
    headers
        .get(family.header(name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl ClientSession {
    /// Read the session from request headers; the user is required.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        let presto = headers.keys().any(|k| k.as_str().starts_with("x-presto-"));
        let trino = headers.keys().any(|k| k.as_str().starts_with("x-trino-"));
        let family = if presto && !trino {
            Family::Presto
        } else {
            Family::Trino
        };
        let user = text(headers, family, "User")
            .ok_or_else(|| format!("{} header is required", family.header("User")))?;
        let mut properties = BTreeMap::new();
        for value in headers.get_all(family.header("Session")) {
            let value = value
                .to_str()
                .map_err(|_| "session header is not text".to_string())?;
            for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("session property {pair:?} is not key=value"))?;
                let value = crate::protocol::prepared::decode(value.trim())?;
                properties.insert(key.trim().to_string(), value);
            }
        }
        let mut prepared = BTreeMap::new();
        for value in headers.get_all(family.header("Prepared-Statement")) {
            let value = value
                .to_str()
                .map_err(|_| "prepared statement header is not text".to_string())?;
            crate::protocol::prepared::parse_header(value, &mut prepared)?;
        }
        Ok(ClientSession {
            family,
            prepared,
            user,
            source: text(headers, family, "Source"),
            catalog: text(headers, family, "Catalog"),
            schema: text(headers, family, "Schema"),
            time_zone: text(headers, family, "Time-Zone"),
            transaction_id: text(headers, family, "Transaction-Id")
                .filter(|id| !id.eq_ignore_ascii_case("none")),
            properties,
            encoding: text(headers, family, "Query-Data-Encoding")
                .as_deref()
                .and_then(shoal_proto::segments::Encoding::choose),
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn reads_either_family() {
        let mut headers = HeaderMap::new();
        headers.insert("x-presto-user", HeaderValue::from_static("alice"));
        headers.insert("x-presto-schema", HeaderValue::from_static("tpch"));
        headers.insert("x-presto-session", HeaderValue::from_static("a=1, b = 2"));
        let session = ClientSession::from_headers(&headers).unwrap();
        assert_eq!(session.family, Family::Presto);
        assert_eq!(session.user, "alice");
        assert_eq!(session.schema.as_deref(), Some("tpch"));
        assert_eq!(session.properties.get("b").map(String::as_str), Some("2"));
        assert!(ClientSession::from_headers(&HeaderMap::new()).is_err());
    }
}
