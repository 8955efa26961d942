//! Shared storage of a Shoal cluster: the file-system profiles of `etc/filesystem/` and the object
//! stores they open (a local file system, or an S3-compatible server through object_store), so
//! tables, seeds and result spools take one code path whatever holds them.

pub mod location;
pub mod profile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{Certificate, ClientOptions, ObjectStore};
use url::Url;

pub use location::{is_plain_segment, is_within, split_s3_url, Entry, Location};
pub use profile::{
    Credentials, Profile, ProfileKind, Profiles, S3Profile, Secret, FILESYSTEM_KEYS,
};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} under {location} failed: {source}")]
    Store {
        location: String,
        what: &'static str,
        source: object_store::Error,
    },
    #[error("cannot use the directory {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is not a plain name")]
    BadName(String),
    #[error("no file-system profile names the bucket of {0} (an S3 profile under etc/filesystem/ with its s3.bucket)")]
    NoProfileFor(String),
    #[error("no file-system profile {0:?} under etc/filesystem/")]
    NoProfile(String),
    #[error("{0}")]
    BadLocation(String),
    #[error("cannot open the S3 store of profile {profile}: {reason}")]
    Open { profile: String, reason: String },
}

/// An S3 bucket's store and the profile that opened it.
#[derive(Clone)]
struct Bucket {
    store: Arc<dyn ObjectStore>,
    profile: S3Profile,
}

/// The opened profiles of one process.
#[derive(Clone, Default)]
pub struct Storage {
    profiles: Profiles,
    buckets: BTreeMap<String, Bucket>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("profiles", &self.profiles)
            .finish()
    }
}

fn same_server(a: &S3Profile, b: &S3Profile) -> bool {
    a.endpoint == b.endpoint
        && a.region == b.region
        && a.path_style == b.path_style
        && a.credentials == b.credentials
        && a.ca_file == b.ca_file
}

impl Storage {
    /// Open every profile's store. Two S3 profiles may name one bucket only with the same
    /// server and credentials (they may differ in prefix).
    pub fn open(profiles: Profiles) -> Result<Self, StorageError> {
        let mut buckets: BTreeMap<String, Bucket> = BTreeMap::new();
        for profile in profiles.iter() {
            let ProfileKind::S3(s3) = &profile.kind else {
                continue;
            };
            if let Some(existing) = buckets.get(&s3.bucket) {
                if !same_server(&existing.profile, s3) {
                    return Err(StorageError::Open {
                        profile: profile.name.clone(),
                        reason: format!(
                            "another profile names bucket {} with another server or credentials",
                            s3.bucket
                        ),
                    });
                }
                continue;
            }
            let store = open_s3(s3).map_err(|reason| StorageError::Open {
                profile: profile.name.clone(),
                reason,
            })?;
            buckets.insert(
                s3.bucket.clone(),
                Bucket {
                    store,
                    profile: s3.clone(),
                },
            );
        }
        Ok(Storage { profiles, buckets })
    }

    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The location `spec` names: `s3://bucket/prefix`, `file:///dir`, an absolute directory,
    /// or one relative to `base`. A local directory is created if missing.
    pub fn location(&self, spec: &str, base: &Path) -> Result<Location, StorageError> {
        if let Some(split) = split_s3_url(spec) {
            let (bucket, prefix) = split.map_err(StorageError::BadLocation)?;
            let found = self
                .buckets
                .get(bucket)
                .ok_or_else(|| StorageError::NoProfileFor(spec.to_string()))?;
            return Ok(Location::s3(found.store.clone(), bucket, prefix));
        }
        let path = match spec.strip_prefix("file://") {
            Some(_) => Url::parse(spec)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| StorageError::BadLocation(format!("{spec} is not a file URL")))?,
            None if spec.contains("://") => {
                return Err(StorageError::BadLocation(format!(
                    "{spec}: only s3:// and file:// locations exist"
                )))
            }
            None => {
                let path = PathBuf::from(spec);
                if path.is_absolute() {
                    path
                } else {
                    base.join(path)
                }
            }
        };
        local_location(&path)
    }

    /// The directory `dir` of profile `profile`: below the profile's prefix on S3; a local
    /// path (absolute, or from `base`) otherwise.
    pub fn in_profile(
        &self,
        profile: &str,
        dir: &str,
        base: &Path,
    ) -> Result<Location, StorageError> {
        let found = self
            .profiles
            .get(profile)
            .ok_or_else(|| StorageError::NoProfile(profile.to_string()))?;
        match &found.kind {
            ProfileKind::Local => self.location(dir, base),
            ProfileKind::S3(s3) => {
                let dir = dir.trim_matches('/');
                let prefix = match (s3.prefix.is_empty(), dir.is_empty()) {
                    (_, true) => s3.prefix.clone(),
                    (true, false) => dir.to_string(),
                    (false, false) => format!("{}/{dir}", s3.prefix),
                };
                self.location(&format!("s3://{}/{prefix}", s3.bucket), base)
            }
        }
    }

    /// The S3 stores by the URL DataFusion looks them up with (`s3://bucket`).
    pub fn object_stores(&self) -> Vec<(Url, Arc<dyn ObjectStore>)> {
        self.buckets
            .iter()
            .filter_map(|(bucket, b)| {
                Url::parse(&format!("s3://{bucket}"))
                    .ok()
                    .map(|url| (url, b.store.clone()))
            })
            .collect()
    }
}

/// The local directory `path` as a location (created if missing).
pub fn local_location(path: &Path) -> Result<Location, StorageError> {
    let failed = |source| StorageError::Directory {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(failed)?;
    let dir = path.canonicalize().map_err(failed)?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| failed(std::io::Error::other(e.to_string())))?
        .with_automatic_cleanup(true);
    Ok(Location::local(Arc::new(store), dir))
}

fn open_s3(s3: &S3Profile) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = match &s3.credentials {
        Credentials::Environment => AmazonS3Builder::from_env(),
        Credentials::Static {
            access_key,
            secret_key,
            session_token,
        } => {
            let builder = AmazonS3Builder::new()
                .with_access_key_id(access_key)
                .with_secret_access_key(secret_key.expose());
            match session_token {
                Some(token) => builder.with_token(token.expose()),
                None => builder,
            }
        }
    };
    let mut client = ClientOptions::new();
    if let Some(path) = &s3.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for certificate in Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{} holds no PEM certificates: {e}", path.display()))?
        {
            client = client.with_root_certificate(certificate);
        }
    }
    builder = builder
        .with_client_options(client)
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.path_style);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder
        .build()
        .map(|store| Arc::new(store) as Arc<dyn ObjectStore>)
        .map_err(|e| e.to_string())
}
