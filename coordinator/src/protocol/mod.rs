//! The Trino/Presto client REST protocol: sessions from headers, types and values as clients
//! decode them, errors, and the `/v1/statement` routes.

pub mod errors;
pub mod session;
pub mod statement;
pub mod types;
pub mod values;
