//! Property test: any client headers (Trino's or Presto's) give a session or a 4xx reason,
//! never a panic.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use shoal_coordinator::protocol::session::ClientSession;

const NAMES: [&str; 10] = [
    "x-trino-user",
    "x-trino-catalog",
    "x-trino-schema",
    "x-trino-session",
    "x-trino-source",
    "x-presto-user",
    "x-presto-session",
    "x-presto-schema",
    "x-trino-client-tags",
    "x-trino-time-zone",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_headers_give_a_session_or_a_reason(
        values in prop::collection::vec((0..NAMES.len(), prop::collection::vec(any::<u8>(), 0..80)), 0..12)
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(HeaderName::from_static(NAMES[name]), value);
            }
        }
        match ClientSession::from_headers(&headers) {
            Ok(session) => prop_assert!(!session.user.is_empty()),
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }
}
