//! [`JsonDocument`]: a serde value in a JSON file, replaced atomically, guarded by a lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can go wrong reading or writing a document. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a valid document: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: cannot encode the document: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Identifies one version of the file on disk, to notice changes made by another process
/// without reading it: modification time, length and inode change together on every save
/// (a save replaces the file, so the inode alone changes even within one mtime tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// A JSON file holding one `T`. A missing file reads as `T::default()`.
#[derive(Debug)]
pub struct JsonDocument<T> {
    path: PathBuf,
    lock_path: PathBuf,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Default> JsonDocument<T> {
    /// A document at `path`; the lock file is `path` with `.lock` appended. Nothing is
    /// touched until the first read or write.
    pub fn new(path: impl Into<PathBuf>) -> JsonDocument<T> {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        JsonDocument {
            path,
            lock_path: lock_path.into(),
            _value: PhantomData,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the document (shared lock: never sees a half-done update of another process).
    pub fn load(&self) -> Result<(T, Option<Stamp>), StoreError> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|e| self.io(&self.lock_path, e))?;
        self.read_unlocked()
    }

    /// The current stamp, or `None` when the file does not exist.
    pub fn stamp(&self) -> Result<Option<Stamp>, StoreError> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Some(stamp_of(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&self.path, e)),
        }
    }

    /// Read-modify-write under an exclusive lock. `change` returns `Ok(Some(r))` to save the
    /// modified value, `Ok(None)` to leave the file untouched, or its own error.
    pub fn update<R, E>(
        &self,
        change: impl FnOnce(&mut T) -> Result<Option<R>, E>,
    ) -> Result<Result<Option<R>, E>, StoreError> {
        let lock = self.lock_file()?;
        lock.lock().map_err(|e| self.io(&self.lock_path, e))?;
        let (mut value, _) = self.read_unlocked()?;
        let outcome = match change(&mut value) {
            Ok(Some(result)) => result,
            Ok(None) => return Ok(Ok(None)),
            Err(error) => return Ok(Err(error)),
        };
        self.write_unlocked(&value)?;
        Ok(Ok(Some(outcome)))
    }

    /// Replaces the whole document (exclusive lock).
    pub fn save(&self, value: &T) -> Result<(), StoreError> {
        let lock = self.lock_file()?;
        lock.lock().map_err(|e| self.io(&self.lock_path, e))?;
        self.write_unlocked(value)
    }

    fn lock_file(&self) -> Result<File, StoreError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| self.io(dir, e))?;
        }
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| self.io(&self.lock_path, e))
    }

    fn read_unlocked(&self) -> Result<(T, Option<Stamp>), StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((T::default(), None)),
            Err(e) => return Err(self.io(&self.path, e)),
        };
        let value = serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })?;
        Ok((value, self.stamp()?))
    }

    fn write_unlocked(&self, value: &T) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Encode {
            path: self.path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<()> {
            // A leftover of a crashed write may have another mode: start afresh.
            let _ = fs::remove_file(&tmp);
            let mut file = private_file(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is durable only once the directory entry is.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.io(&self.path, e))
    }

    fn io(&self, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(unix)]
fn stamp_of(meta: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    }
}

#[cfg(not(unix))]
fn stamp_of(meta: &fs::Metadata) -> Stamp {
    Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: 0,
    }
}

/// Creates (or truncates) `path` readable and writable by its owner only: documents hold
/// password hashes, which no other local user should read. (The mode applies when the
/// file is created; `write_unlocked` always creates a fresh temporary file.)
fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Doc {
        names: Vec<String>,
    }

    #[test]
    fn missing_file_reads_as_default_and_updates_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = JsonDocument::<Doc>::new(dir.path().join("sub/defs.json"));
        let (value, stamp) = doc.load().expect("load");
        assert_eq!(value, Doc::default());
        assert_eq!(stamp, None);

        let added = doc
            .update(|d| {
                d.names.push("alice".into());
                Ok::<_, ()>(Some(d.names.len()))
            })
            .expect("store")
            .expect("change");
        assert_eq!(added, Some(1));
        let (value, stamp) = doc.load().expect("load");
        assert_eq!(value.names, vec!["alice".to_string()]);
        assert!(stamp.is_some());
        assert!(
            !dir.path().join("sub/defs.json.tmp").exists(),
            "no temporary left behind"
        );
    }

    #[cfg(unix)]
    #[test]
    fn documents_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("defs.json");
        // Even over a leftover temporary file with a looser mode.
        std::fs::write(dir.path().join("defs.json.tmp"), "x").expect("write");
        let doc = JsonDocument::<Doc>::new(path.clone());
        doc.save(&Doc::default()).expect("save");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    #[test]
    fn a_refused_change_leaves_the_file_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = JsonDocument::<Doc>::new(dir.path().join("defs.json"));
        doc.save(&Doc {
            names: vec!["a".into()],
        })
        .expect("save");
        let before = doc.stamp().expect("stamp");
        let outcome = doc.update(|d| {
            d.names.clear();
            Err::<Option<()>, _>("no")
        });
        assert_eq!(outcome.expect("store"), Err("no"));
        assert_eq!(doc.stamp().expect("stamp"), before);
        assert_eq!(doc.load().expect("load").0.names, vec!["a".to_string()]);
    }

    #[test]
    fn every_save_changes_the_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = JsonDocument::<Doc>::new(dir.path().join("defs.json"));
        doc.save(&Doc {
            names: vec!["a".into()],
        })
        .expect("save");
        let first = doc.stamp().expect("stamp");
        doc.save(&Doc {
            names: vec!["b".into()],
        })
        .expect("save");
        assert_ne!(doc.stamp().expect("stamp"), first, "same length, new inode");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("defs.json");
        fs::write(&path, b"{ not json").expect("write");
        let doc = JsonDocument::<Doc>::new(&path);
        let error = doc.load().expect_err("corrupt");
        assert!(error.to_string().contains("defs.json"), "{error}");
    }
}
