//! A client of the coordinators' key-value API (`/v1/admin/kv/{key}`) that tells apart
//! answers the cluster gave from requests whose outcome is unknown.

use std::time::Duration;

use serde_json::{json, Value};
use shoal_proto::CLUSTER_SECRET_HEADER;

/// Why a request did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The coordinator refused the request before it could take effect (a 4xx).
    Refused(String),
    /// The connection was refused: the request never reached a coordinator.
    NotSent(String),
    /// No answer, or an error after which the write may or may not have taken effect.
    Unknown(String),
}

pub type KvResult<T> = Result<T, KvError>;

/// Talks to any coordinator's key-value API with the cluster secret.
pub struct KvClient {
    agent: ureq::Agent,
    secret: String,
}

impl KvClient {
    /// A client whose every request gives up after `timeout`.
    pub fn new(secret: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        KvClient {
            agent,
            secret: secret.to_string(),
        }
    }

    /// The key's value, None when it is absent (a linearizable read).
    pub fn get(&self, base: &str, key: &str) -> KvResult<Option<String>> {
        let answer = self
            .agent
            .get(format!("{base}/v1/admin/kv/{key}"))
            .header(CLUSTER_SECRET_HEADER, &self.secret)
            .call();
        match read_answer(answer)? {
            (200, body) => Ok(body["value"].as_str().map(String::from)),
            (404, body) if body["error"]["code"] == "NOT_FOUND" => Ok(None),
            (status, body) => Err(classify(status, &body)),
        }
    }

    /// Write `value` under `key` unconditionally.
    pub fn put(&self, base: &str, key: &str, value: &str) -> KvResult<()> {
        self.send_put(base, key, json!({ "value": value }))
            .map(|_| ())
    }

    /// Write `new` if the key holds `expected` (None: if it is absent); whether it did.
    pub fn compare_and_set(
        &self,
        base: &str,
        key: &str,
        expected: Option<&str>,
        new: &str,
    ) -> KvResult<bool> {
        let body = match expected {
            Some(expected) => json!({ "value": new, "ifValue": expected }),
            None => json!({ "value": new, "ifAbsent": true }),
        };
        self.send_put(base, key, body)
    }

    fn send_put(&self, base: &str, key: &str, body: Value) -> KvResult<bool> {
        let answer = self
            .agent
            .put(format!("{base}/v1/admin/kv/{key}"))
            .header(CLUSTER_SECRET_HEADER, &self.secret)
            .send_json(body);
        match read_answer(answer)? {
            (200, body) => body["succeeded"]
                .as_bool()
                .ok_or_else(|| KvError::Unknown(format!("an answer without succeeded: {body}"))),
            (status, body) => Err(classify(status, &body)),
        }
    }
}

fn read_answer(answer: Result<http::Response<ureq::Body>, ureq::Error>) -> KvResult<(u16, Value)> {
    let mut response = answer.map_err(|e| match e {
        ureq::Error::ConnectionFailed => KvError::NotSent(e.to_string()),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            KvError::NotSent(io.to_string())
        }
        other => KvError::Unknown(other.to_string()),
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| KvError::Unknown(e.to_string()))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn classify(status: u16, body: &Value) -> KvError {
    let message = format!("{status}: {body}");
    if (400..500).contains(&status) {
        KvError::Refused(message)
    } else {
        KvError::Unknown(message)
    }
}
