//! The Trino/Presto client REST protocol: sessions from headers, types and values as clients
//! decode them, errors, and the `/v1/statement` routes.

pub mod prepared;
pub mod procedures;
pub mod session;
pub mod session_statements;
pub mod spooling;
pub mod statement;

pub use shoal_engine::{errors, types, values};
