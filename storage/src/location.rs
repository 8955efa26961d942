//! A location on shared storage: a directory of a local file system or a key prefix in an S3
//! bucket, with the few operations Shoal needs, all through object_store. Names below a
//! location are checked segments, so nothing a caller passes climbs out of it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::StorageError;

/// How the objects of a store are named to DataFusion and in records.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// The store's root is this directory (absolute, resolved); objects are file paths.
    Local(PathBuf),
    /// Objects are `s3://bucket/key`.
    S3 { bucket: String },
}

/// An object found under a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name relative to the location (`a/b.parquet` when listed recursively).
    pub name: String,
    /// Its full name: a file path or an `s3://` URL.
    pub full_name: String,
    pub size: u64,
    /// Its key in the store.
    key: ObjectPath,
}

#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    root: Root,
    /// The key prefix of this location inside `store`; empty for the store's root.
    prefix: ObjectPath,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.prefix == other.prefix
    }
}

/// Whether `segment` is one plain path segment: not empty, no `/`, `\` or NUL, not `.` or `..`.
pub fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['/', '\\', '\0'])
}

/// Whether `name` is `base` or lies below it, by whole `/` segments (trailing `/` ignored).
pub fn is_within(name: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    name.trim_end_matches('/') == base || name.starts_with(&format!("{base}/"))
}

/// The bucket and key prefix of an `s3://bucket/prefix` URL (the prefix without leading or
/// trailing `/`); None for any other URL, an error for a prefix with empty, `.` or `..`
/// segments.
pub fn split_s3_url(url: &str) -> Option<Result<(&str, &str), String>> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    Some(
        if bucket.is_empty() || (!prefix.is_empty() && !prefix.split('/').all(is_plain_segment)) {
            Err(format!(
                "{url}: a bucket and a key prefix without empty, '.' or '..' segments are needed"
            ))
        } else {
            Ok((bucket, prefix))
        },
    )
}

impl Location {
    pub(crate) fn local(store: Arc<dyn ObjectStore>, dir: PathBuf) -> Self {
        Location {
            store,
            root: Root::Local(dir),
            prefix: ObjectPath::default(),
        }
    }

    pub(crate) fn s3(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Self {
        Location {
            store,
            root: Root::S3 {
                bucket: bucket.to_string(),
            },
            prefix: ObjectPath::from(prefix),
        }
    }

    /// The location of `segment` below this one.
    pub fn child(&self, segment: &str) -> Result<Location, StorageError> {
        Ok(Location {
            store: self.store.clone(),
            root: self.root.clone(),
            prefix: self.key(segment)?,
        })
    }

    /// The key of the object `name` (one plain segment) in this location.
    fn key(&self, name: &str) -> Result<ObjectPath, StorageError> {
        if !is_plain_segment(name) {
            return Err(StorageError::BadName(name.to_string()));
        }
        Ok(self.prefix.clone().join(name))
    }

    /// The object store, for DataFusion's registry.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Whether this is a local directory.
    pub fn is_local(&self) -> bool {
        matches!(self.root, Root::Local(_))
    }

    /// The local directory, for a local location.
    pub fn local_dir(&self) -> Option<PathBuf> {
        match &self.root {
            Root::Local(dir) => Some(
                self.prefix
                    .parts()
                    .fold(dir.clone(), |p, part| p.join(part.as_ref())),
            ),
            Root::S3 { .. } => None,
        }
    }

    fn full_name(&self, key: &ObjectPath) -> String {
        match &self.root {
            Root::Local(dir) => key
                .parts()
                .fold(dir.clone(), |p, part| p.join(part.as_ref()))
                .display()
                .to_string(),
            Root::S3 { bucket } => format!("s3://{bucket}/{key}"),
        }
    }

    /// This location as DataFusion names a directory: an absolute path or `s3://bucket/prefix`,
    /// with a trailing `/`.
    pub fn url(&self) -> String {
        let mut name = self.full_name(&self.prefix);
        if !name.ends_with('/') {
            name.push('/');
        }
        name
    }

    /// The full name of the object `name` here (as records and DataFusion name files).
    pub fn name_of(&self, name: &str) -> Result<String, StorageError> {
        Ok(self.full_name(&self.key(name)?))
    }

    /// The name of `full_name` relative to this location, if it is strictly inside (lexically:
    /// plain segments only).
    pub fn relative(&self, full_name: &str) -> Option<String> {
        let base = self.url();
        let rest = full_name.strip_prefix(&base)?;
        (!rest.is_empty() && rest.split('/').all(is_plain_segment)).then(|| rest.to_string())
    }

    fn relative_key(&self, relative: &str) -> Result<ObjectPath, StorageError> {
        if relative.is_empty() || !relative.split('/').all(is_plain_segment) {
            return Err(StorageError::BadName(relative.to_string()));
        }
        Ok(relative
            .split('/')
            .fold(self.prefix.clone(), |key, part| key.join(part)))
    }

    fn error(&self, what: &'static str, source: object_store::Error) -> StorageError {
        StorageError::Store {
            location: self.url(),
            what,
            source,
        }
    }

    /// Write the object `name`, replacing it whole (readers see the old or the new object).
    /// It is durable when this returns: S3 acknowledges stored objects, and a local file and
    /// its directory are synced.
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<(), StorageError> {
        let key = self.key(name)?;
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("write", e))?;
        self.sync_local(&key).await
    }

    /// [`Location::put`] without syncing a local file: for data that need not survive a
    /// crash of this machine, only the death of the process that wrote it (result spools).
    pub async fn put_unsynced(&self, name: &str, bytes: Bytes) -> Result<(), StorageError> {
        let key = self.key(name)?;
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error("write", e))
    }

    /// Sync a local file written through the store (which does not) and its directory, so
    /// that a written object survives a crash of the machine.
    async fn sync_local(&self, key: &ObjectPath) -> Result<(), StorageError> {
        let Root::Local(dir) = &self.root else {
            return Ok(());
        };
        let path = key
            .parts()
            .fold(dir.clone(), |p, part| p.join(part.as_ref()));
        let synced = tokio::task::spawn_blocking(move || {
            let sync = |path: &std::path::Path| std::fs::File::open(path)?.sync_all();
            let parent = path.parent().map(std::path::Path::to_path_buf);
            sync(&path)
                .and_then(|()| parent.as_deref().map_or(Ok(()), sync))
                .map_err(|source| StorageError::Directory { path, source })
        });
        synced.await.unwrap_or_else(|e| {
            Err(StorageError::Directory {
                path: dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }

    /// Create the object `name` unless it exists (`If-None-Match: *` on S3); false when it
    /// did.
    pub async fn put_new(&self, name: &str, bytes: Bytes) -> Result<bool, StorageError> {
        let key = self.key(name)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&key, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => self.sync_local(&key).await.map(|()| true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.error("create", e)),
        }
    }

    /// The object `name`, or None if there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        let key = self.key(name)?;
        match self.store.get(&key).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.error("read", e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", e)),
        }
    }

    /// Remove the object `name`; one that is gone already is fine.
    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        let key = self.key(name)?;
        self.delete_key(&key).await
    }

    /// Remove the object at `relative` (segments below this location).
    pub async fn delete_relative(&self, relative: &str) -> Result<(), StorageError> {
        let key = self.relative_key(relative)?;
        self.delete_key(&key).await
    }

    async fn delete_key(&self, key: &ObjectPath) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", e)),
        }
    }

    /// One level of this location: its objects and sub-directories (common prefixes on S3).
    async fn listing(&self) -> Result<Option<object_store::ListResult>, StorageError> {
        match self.store.list_with_delimiter(Some(&self.prefix)).await {
            Ok(listed) => Ok(Some(listed)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("list", e)),
        }
    }

    fn entry(&self, name: String, meta: object_store::ObjectMeta) -> Entry {
        Entry {
            full_name: self.full_name(&meta.location),
            name,
            size: meta.size,
            key: meta.location,
        }
    }

    /// The objects directly here (not below sub-directories).
    pub async fn list(&self) -> Result<Vec<Entry>, StorageError> {
        let Some(listed) = self.listing().await? else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<Entry> = listed
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                Some(self.entry(name, meta))
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The names of the sub-directories here.
    pub async fn list_dirs(&self) -> Result<Vec<String>, StorageError> {
        let Some(listed) = self.listing().await? else {
            return Ok(Vec::new());
        };
        let mut dirs: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Every object below this location, at any depth.
    pub async fn list_all(&self) -> Result<Vec<Entry>, StorageError> {
        let prefix = self.prefix.clone();
        let metas: Vec<_> = match self.store.list(Some(&prefix)).try_collect().await {
            Ok(metas) => metas,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.error("list", e)),
        };
        let mut entries: Vec<Entry> = metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta
                    .location
                    .prefix_match(&prefix)?
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                Some(self.entry(name, meta))
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Remove every object below this location; returns how many there were.
    pub async fn delete_all(&self) -> Result<usize, StorageError> {
        let entries = self.list_all().await?;
        self.delete_entries(&entries).await?;
        Ok(entries.len())
    }

    /// Remove `entries` (listed from this location), then this location's directory if it is
    /// a local one left empty (the store removes the empty ones between, not this one).
    pub async fn delete_entries(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let keys: Vec<_> = entries.iter().map(|e| Ok(e.key.clone())).collect();
        let results: Vec<_> = self
            .store
            .delete_stream(futures::stream::iter(keys).boxed())
            .collect()
            .await;
        for result in results {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", e)),
            }
        }
        if let Some(dir) = self.local_dir() {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_location_writes_lists_and_removes_inside_itself() {
        let dir = tempfile::TempDir::new().expect("dir");
        let root = crate::local_location(&dir.path().join("root")).expect("location");
        let table = root.child("t1").expect("child");
        let write = table.child("q.0").expect("child");
        write
            .put("a.parquet", Bytes::from_static(b"a"))
            .await
            .expect("put");
        write
            .put("b.parquet", Bytes::from_static(b"bb"))
            .await
            .expect("put");
        assert!(write
            .put_new("claim", Bytes::from_static(b"1"))
            .await
            .expect("new"));
        assert!(!write
            .put_new("claim", Bytes::from_static(b"2"))
            .await
            .expect("new"));
        assert_eq!(
            write.get("claim").await.expect("get"),
            Some(Bytes::from_static(b"1"))
        );
        assert_eq!(write.get("none").await.expect("get"), None);
        let listed = write.list().await.expect("list");
        let names: Vec<_> = listed.iter().map(|e| (e.name.as_str(), e.size)).collect();
        assert_eq!(names, [("a.parquet", 1), ("b.parquet", 2), ("claim", 1)]);
        assert_eq!(
            listed[0].full_name,
            root.local_dir()
                .expect("dir")
                .join("t1/q.0/a.parquet")
                .display()
                .to_string()
        );
        assert_eq!(root.list_dirs().await.expect("dirs"), ["t1"]);
        assert_eq!(
            table.relative(&listed[0].full_name).as_deref(),
            Some("q.0/a.parquet")
        );
        assert_eq!(table.relative("/elsewhere/a.parquet"), None);
        assert_eq!(table.relative(&format!("{}../x", table.url())), None);
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(root.child(bad).is_err(), "{bad:?}");
        }
        assert_eq!(table.delete_all().await.expect("delete"), 3);
        assert!(is_within("s3://b/raw/t/", "s3://b/raw"));
        assert!(is_within("/a/b", "/a/b/"));
        assert!(!is_within("s3://b/rawer", "s3://b/raw"));
        assert_eq!(split_s3_url("s3://b/x/y/"), Some(Ok(("b", "x/y"))));
        assert_eq!(split_s3_url("s3://b"), Some(Ok(("b", ""))));
        assert!(matches!(split_s3_url("s3://b/x/../y"), Some(Err(_))));
        assert!(matches!(split_s3_url("s3:///x"), Some(Err(_))));
        assert_eq!(split_s3_url("/local/dir"), None);
        assert!(root.list_dirs().await.expect("dirs").is_empty());
        assert!(root.local_dir().expect("dir").is_dir());
    }
}
