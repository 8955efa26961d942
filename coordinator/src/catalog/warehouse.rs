//! The warehouse directory: where managed tables keep their files, one directory per table id
//! (`<warehouse>/<table id>/<query id>.<attempt>/part-N.parquet`), and the one check every path
//! Shoal writes or deletes passes: it lies inside the warehouse after resolution (no `..`, no
//! symbolic link leading out). No name a user chose ever becomes part of a path.

use std::path::{Component, Path, PathBuf};

use rand_core::{OsRng, RngCore};

/// Length of a table id: 32 lower-case hexadecimal digits (128 random bits).
const ID_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot use the warehouse directory {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing {}: it is not inside the warehouse {}", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    /// Absolute and free of symbolic links.
    root: PathBuf,
}

impl Warehouse {
    /// The warehouse at `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Self, WarehouseError> {
        let open = |source| WarehouseError::Open {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(open)?;
        let root = dir.canonicalize().map_err(open)?;
        Ok(Warehouse { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the managed table `id`.
    pub fn table_dir(&self, id: &str) -> Result<PathBuf, WarehouseError> {
        if !is_table_id(id) {
            return Err(WarehouseError::BadId(id.to_string()));
        }
        Ok(self.root.join(id))
    }

    /// The directory one attempt of one query writes table `id`'s new files into.
    pub fn write_dir(
        &self,
        id: &str,
        query_id: &str,
        attempt: u32,
    ) -> Result<PathBuf, WarehouseError> {
        if !is_query_id(query_id) {
            return Err(WarehouseError::BadQueryId(query_id.to_string()));
        }
        Ok(self.table_dir(id)?.join(write_dir_name(query_id, attempt)))
    }

    /// `path` if it lies strictly inside the warehouse: absolute, without `.` or `..`
    /// components, below the root, and with no symbolic link on the way that leads elsewhere
    /// (the deepest part of it that exists is resolved and must still be inside).
    pub fn check(&self, path: &Path) -> Result<PathBuf, WarehouseError> {
        let outside = || WarehouseError::Outside {
            path: path.to_path_buf(),
            root: self.root.clone(),
        };
        let lexical_ok = path.is_absolute()
            && path.components().all(|c| {
                matches!(
                    c,
                    Component::RootDir | Component::Normal(_) | Component::Prefix(_)
                )
            });
        if !lexical_ok || !path.starts_with(&self.root) || path == self.root {
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
        if resolved == self.root && existing != self.root.as_path() {
            return Err(outside());
        }
        if !resolved.starts_with(&self.root) {
            return Err(outside());
        }
        Ok(path.to_path_buf())
    }

    /// Create `dir` (checked) and its parents inside the warehouse.
    pub fn create_dir(&self, dir: &Path) -> Result<(), WarehouseError> {
        let dir = self.check(dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| WarehouseError::Open {
            path: dir.clone(),
            source,
        })?;
        // A link planted while the directories were made would show now.
        self.check(&dir).map(|_| ())
    }

    /// Remove `dir` and everything in it, if it is inside the warehouse; a missing directory
    /// is already removed.
    pub fn remove_dir(&self, dir: &Path) -> Result<(), WarehouseError> {
        let dir = self.check(dir)?;
        match std::fs::symlink_metadata(&dir) {
            Err(_) => return Ok(()),
            Ok(meta) if !meta.is_dir() => {
                // A link or a file where a directory belongs: never follow it.
                return Err(WarehouseError::Outside {
                    path: dir,
                    root: self.root.clone(),
                });
            }
            Ok(_) => {}
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WarehouseError::Open { path: dir, source }),
        }
    }

    /// Remove the data file `file` (inside the warehouse, and a plain file); one that is
    /// already gone is fine.
    pub fn remove_file(&self, file: &Path) -> Result<(), WarehouseError> {
        let file = self.check(file)?;
        match std::fs::symlink_metadata(&file) {
            Err(_) => return Ok(()),
            Ok(meta) if !meta.is_file() => {
                return Err(WarehouseError::Outside {
                    path: file,
                    root: self.root.clone(),
                });
            }
            Ok(_) => {}
        }
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(WarehouseError::Open { path: file, source }),
        }
    }
}

#[cfg(test)]
#[path = "warehouse_tests.rs"]
mod tests;
