//! The warehouse: where managed tables keep their files, a local directory or a prefix of an S3
//! bucket, one directory per table id (`<warehouse>/<table id>/<query id>.<attempt>/part-N.parquet`),
//! and the one check every path Shoal deletes passes: it lies inside the warehouse (no `..`,
//! and on a local disk no symbolic link leading out). No name a user chose ever becomes part
//! of a path.

use std::path::{Component, Path, PathBuf};

use rand_core::{OsRng, RngCore};
use shoal_storage::{Location, StorageError};

/// Length of a table id: 32 lower-case hexadecimal digits (128 random bits).
const ID_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("refusing {path}: it is not inside the warehouse {root}")]
    Outside { path: String, root: String },
    #[error("{0:?} is not a table id")]
    BadId(String),
    #[error("{0:?} is not a query id")]
    BadQueryId(String),
}

/// A new table id.
pub fn new_table_id() -> String {
    let mut bytes = [0u8; ID_LEN / 2];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the shape of a table id (so it is one path component and nothing else).
pub fn is_table_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Query ids are letters, digits and `_` (see `query::id`); nothing else is let into a path.
fn is_query_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The name of a query attempt's write directory, and back.
pub fn write_dir_name(query_id: &str, attempt: u32) -> String {
    format!("{query_id}.{attempt}")
}

pub fn parse_write_dir_name(name: &str) -> Option<(&str, u32)> {
    let (query, attempt) = name.rsplit_once('.')?;
    let attempt = attempt.parse().ok()?;
    is_query_id(query).then_some((query, attempt))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warehouse {
    /// A local directory (absolute, free of symbolic links) or a prefix of an S3 bucket.
    root: Location,
}

impl Warehouse {
    /// The warehouse at `root`.
    pub fn new(root: Location) -> Self {
        Warehouse { root }
    }

    /// The warehouse in the local directory `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Self, WarehouseError> {
        Ok(Warehouse {
            root: shoal_storage::local_location(dir)?,
        })
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    /// The directory of the managed table `id`.
    pub fn table_dir(&self, id: &str) -> Result<Location, WarehouseError> {
        if !is_table_id(id) {
            return Err(WarehouseError::BadId(id.to_string()));
        }
        Ok(self.root.child(id)?)
    }

    /// The directory one attempt of one query writes table `id`'s new files into.
    pub fn write_dir(
        &self,
        id: &str,
        query_id: &str,
        attempt: u32,
    ) -> Result<Location, WarehouseError> {
        if !is_query_id(query_id) {
            return Err(WarehouseError::BadQueryId(query_id.to_string()));
        }
        Ok(self
            .table_dir(id)?
            .child(&write_dir_name(query_id, attempt))?)
    }

    /// Make ready for a write into `dir`: on a local warehouse, create it and refuse it if a
    /// symbolic link on its way leads out (checked before and after creating, so a link
    /// planted meanwhile shows too). An S3 prefix needs nothing.
    pub fn prepare_write(&self, dir: &Location) -> Result<(), WarehouseError> {
        let Some(path) = dir.local_dir() else {
            return Ok(());
        };
        let path = self.check(&path)?;
        std::fs::create_dir_all(&path).map_err(|source| {
            WarehouseError::Storage(StorageError::Directory {
                path: path.clone(),
                source,
            })
        })?;
        self.check(&path).map(|_| ())
    }

    /// For a local warehouse, `path` if it lies strictly inside the warehouse: absolute,
    /// without `.` or `..` components, below the root, and with no symbolic link on the way
    /// that leads elsewhere (the deepest part of it that exists is resolved and must still be
    /// inside).
    pub fn check(&self, path: &Path) -> Result<PathBuf, WarehouseError> {
        let root = self.root.local_dir().unwrap_or_default();
        let outside = || WarehouseError::Outside {
            path: path.display().to_string(),
            root: root.display().to_string(),
        };
        if !self.root.is_local() {
            return Err(outside());
        }
        let lexical_ok = path.is_absolute()
            && path.components().all(|c| {
                matches!(
                    c,
                    Component::RootDir | Component::Normal(_) | Component::Prefix(_)
                )
            });
        if !lexical_ok || !path.starts_with(&root) || path == root {
            return Err(outside());
        }
        let mut existing = path;
        loop {
            match std::fs::symlink_metadata(existing) {
                Ok(_) => break,
                Err(_) => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => return Err(outside()),
                },
            }
        }
        let resolved = existing.canonicalize().map_err(|_| outside())?;
        if resolved == root && existing != root.as_path() {
            return Err(outside());
        }
        if !resolved.starts_with(&root) {
            return Err(outside());
        }
        Ok(path.to_path_buf())
    }

    /// On a local warehouse, refuse `dir` unless it is a real directory inside (or missing).
    fn check_local_dir(&self, dir: &Location) -> Result<bool, WarehouseError> {
        let Some(path) = dir.local_dir() else {
            return Ok(true);
        };
        let path = self.check(&path)?;
        match std::fs::symlink_metadata(&path) {
            Err(_) => Ok(false),
            // A link or a file where a directory belongs: never follow it.
            Ok(meta) if !meta.is_dir() => Err(WarehouseError::Outside {
                path: path.display().to_string(),
                root: self.root.url(),
            }),
            Ok(_) => Ok(true),
        }
    }

    /// Remove `dir` and everything in it, if it is inside the warehouse; a missing directory
    /// is already removed. On a local warehouse no symbolic link is followed: the directory and
    /// the directory of each file must resolve inside.
    pub async fn remove_dir(&self, dir: &Location) -> Result<(), WarehouseError> {
        if self
            .root
            .relative(dir.url().trim_end_matches('/'))
            .is_none()
        {
            return Err(WarehouseError::Outside {
                path: dir.url(),
                root: self.root.url(),
            });
        }
        if !self.check_local_dir(dir)? {
            return Ok(());
        }
        let entries = dir.list_all().await?;
        if dir.is_local() {
            for entry in &entries {
                let outside = || WarehouseError::Outside {
                    path: entry.full_name.clone(),
                    root: self.root.url(),
                };
                if let Some(parent) = Path::new(&entry.full_name).parent() {
                    if parent.canonicalize().map_err(|_| outside())? != parent {
                        return Err(outside());
                    }
                }
            }
        }
        dir.delete_entries(&entries).await?;
        Ok(())
    }

    /// Remove the files of a write that will not commit (`why`), logging a failure: the
    /// cleanup sweep removes them later then.
    pub async fn discard(&self, dir: &Location, why: &str) {
        if let Err(e) = self.remove_dir(dir).await {
            tracing::warn!(dir = %dir.url(), error = %e, why, "cannot remove the files of a write");
        }
    }

    /// Remove the data file `name` (a path or URL inside the warehouse, and a plain file on a
    /// local one); one that is already gone is fine.
    pub async fn remove_file(&self, name: &str) -> Result<(), WarehouseError> {
        let outside = || WarehouseError::Outside {
            path: name.to_string(),
            root: self.root.url(),
        };
        let relative = self.root.relative(name).ok_or_else(outside)?;
        if self.root.is_local() {
            let file = self.check(Path::new(name))?;
            match std::fs::symlink_metadata(&file) {
                Err(_) => return Ok(()),
                Ok(meta) if !meta.is_file() => return Err(outside()),
                Ok(_) => {}
            }
        }
        self.root.delete_relative(&relative).await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "warehouse_tests.rs"]
mod tests;
