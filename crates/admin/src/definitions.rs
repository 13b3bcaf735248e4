//! The internal access-control database: `<data_dir>/definitions.json`, one
//! [`JsonDocument`] of [`Definitions`] (users, vhosts, permissions) shared by the running
//! broker, the management HTTP API and the `ferrymq users|vhosts|permissions|
//! import-definitions` commands.
//!
//! Why here: the CLI (in the `ferrymq` binary) and the management API (this crate) must make
//! every change the same way, and this crate is the lowest one that both reach and that knows
//! the broker, the auth model and the store. The pure edits themselves live in
//! [`ferrymq_auth::edit`]; this module adds the file, its lock and validation
//! ([`Database::change`]), and keeping a running broker in step with the file ([`Live`]).
//!
//! Everybody changes the file only through [`JsonDocument::update`] (read-modify-write under
//! an exclusive lock, atomic replace), so the CLI is safe while the broker runs. The broker
//! loads the file at start ([`Database::load_valid`]: an invalid file stops the start), then
//! a [`Watcher`] polls the file's stamp and applies changes within [`POLL_INTERVAL`], and
//! writes back the argon2id hashes of users who logged in with a legacy hash. Changes made
//! through [`Live::change`] (the API) apply at once. Nothing here prints, and nothing logs a
//! password or a hash.

mod watch;

use std::fmt;
use std::path::{Path, PathBuf};

use ferrymq_auth::edit::{self, EditError};
use ferrymq_auth::{Definitions, DefinitionsError};
use ferrymq_store::{JsonDocument, Stamp, StoreError};

pub use watch::{Live, POLL_INTERVAL, Watcher};

/// The database's file name inside the data directory.
pub const FILE_NAME: &str = "definitions.json";

/// The database file of one data directory.
#[derive(Debug)]
pub struct Database {
    document: JsonDocument<Definitions>,
}

/// Why the database could not be used. `Display` names the file.
#[derive(Debug)]
pub enum LoadError {
    /// Unreadable, or not JSON of the expected shape.
    Store(StoreError),
    /// Readable, but inconsistent ([`Definitions::validate`]).
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, in document order.
        problems: Vec<DefinitionsError>,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Store(error) => write!(f, "{error}"),
            LoadError::Invalid { path, problems } => {
                write!(f, "{}: invalid definitions:", path.display())?;
                for problem in problems {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

impl From<StoreError> for LoadError {
    fn from(error: StoreError) -> LoadError {
        LoadError::Store(error)
    }
}

/// Why [`Database::change`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The file could not be read or written.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The edit was refused, or its result would be invalid.
    #[error("{0}")]
    Edit(#[from] EditError),
}

impl Database {
    /// The database of the data directory `dir` (nothing is read or created yet).
    pub fn in_data_dir(dir: &Path) -> Database {
        Database {
            document: JsonDocument::new(dir.join(FILE_NAME)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.document.path()
    }

    /// The underlying document, for read-modify-write changes.
    pub fn document(&self) -> &JsonDocument<Definitions> {
        &self.document
    }

    /// Reads the file (missing = empty) without checking consistency.
    pub fn load(&self) -> Result<(Definitions, Option<Stamp>), StoreError> {
        self.document.load()
    }

    /// One read-modify-write under the file's exclusive lock: `edit` changes the definitions
    /// and returns `Ok(Some(r))` to save them (after [`Definitions::validate`] accepted the
    /// result), `Ok(None)` to leave the file untouched, or its refusal. Returns `r` and the
    /// definitions as saved. Blocks on the lock: call it from a blocking thread in async code.
    pub fn change<R>(
        &self,
        edit: impl FnOnce(&mut Definitions) -> Result<Option<R>, EditError>,
    ) -> Result<Option<(R, Definitions)>, ChangeError> {
        let outcome = self.document.update(|definitions| {
            let Some(result) = edit(definitions)? else {
                return Ok(None);
            };
            edit::validate(definitions)?;
            Ok::<_, EditError>(Some((result, definitions.clone())))
        })?;
        Ok(outcome?)
    }

    /// Reads the file and checks it with [`Definitions::validate`].
    pub fn load_valid(&self) -> Result<(Definitions, Option<Stamp>), LoadError> {
        let (definitions, stamp) = self.document.load()?;
        check(self.path(), &definitions)?;
        Ok((definitions, stamp))
    }
}

/// [`Definitions::validate`] as a [`LoadError`] naming `path`.
pub fn check(path: &Path, definitions: &Definitions) -> Result<(), LoadError> {
    let problems = definitions.validate();
    if problems.is_empty() {
        return Ok(());
    }
    Err(LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrymq_auth::{PasswordHash, PermissionRecord, Permissions, UserRecord};

    #[test]
    fn a_missing_file_is_an_empty_database_and_problems_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::in_data_dir(dir.path());
        assert_eq!(db.path(), dir.path().join("definitions.json"));
        let (definitions, stamp) = db.load_valid().expect("empty");
        assert_eq!(definitions, Definitions::default());
        assert_eq!(stamp, None);

        let broken = Definitions {
            users: vec![UserRecord {
                name: "alice".into(),
                password_hash: PasswordHash::None,
                tags: vec![],
                max_connections: None,
            }],
            vhosts: vec![],
            permissions: vec![PermissionRecord {
                user: "alice".into(),
                vhost: "/".into(),
                permissions: Permissions::full(),
            }],
        };
        db.document().save(&broken).expect("save");
        let error = db.load_valid().expect_err("invalid").to_string();
        assert!(
            error.starts_with(&db.path().display().to_string()),
            "{error}"
        );
        assert!(
            error.contains("permissions of user \"alice\" for unknown vhost \"/\""),
            "{error}"
        );

        std::fs::write(db.path(), "{ nope").expect("write");
        let error = db.load_valid().expect_err("corrupt").to_string();
        assert!(error.contains("definitions.json"), "{error}");
    }
}
