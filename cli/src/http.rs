//! HTTP(S) clients: the connector every command uses, and a small JSON client for the admin
//! API, carrying the cluster secret.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::CLUSTER_SECRET_HEADER;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client trusting the system's certificate authorities, or only those in the PEM
/// file `ca_file`.
pub fn http_client(ca_file: Option<&Path>) -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate =
                    certificate.map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("a certificate in {}: {e}", path.display()))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("cannot load the system's certificate authorities: {e}"))?,
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// An error with its causes, `outer: inner: ...` (a connection error names the TLS problem).
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An answer that was not a success, with the server's message.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpFailure {
    pub status: u16,
    pub message: String,
}

pub struct AdminClient {
    http: HttpClient,
    base: String,
    secret: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// A client of the coordinator at `base`; https:// URLs are trusted through the system's
    /// certificate authorities or those in `ca_file`.
    pub fn new(base: &str, secret: Option<String>, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(AdminClient {
            http: http_client(ca_file).map_err(|e| anyhow!(e))?,
            base: base.trim_end_matches('/').to_string(),
            secret,
            timeout: Duration::from_secs(30),
        })
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
