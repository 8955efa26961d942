//! A small JSON-over-HTTP client for the admin API, carrying the cluster secret.

use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::CLUSTER_SECRET_HEADER;

/// An answer that was not a success, with the server's message.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpFailure {
    pub status: u16,
    pub message: String,
}

pub struct AdminClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    secret: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    pub fn new(base: &str, secret: Option<String>) -> Self {
        AdminClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_string(),
            secret,
            timeout: Duration::from_secs(30),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(http::Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(http::Method::POST, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(http::Method::DELETE, path, None::<&()>).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(secret) = &self.secret {
            request = request.header(CLUSTER_SECRET_HEADER, secret);
        }
        let payload = match body {
            Some(body) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .with_context(|| format!("bad URL {url}"))?;
        let exchange = async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow!("{url} did not answer within {:?}", self.timeout))?
            .with_context(|| format!("cannot reach {url}"))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).to_string());
            return Err(HttpFailure {
                status: status.as_u16(),
                message,
            }
            .into());
        }
        serde_json::from_slice(&bytes).with_context(|| format!("unexpected answer from {url}"))
    }
}
