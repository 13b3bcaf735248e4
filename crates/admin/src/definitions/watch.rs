//! [`Live`]: keeps the running broker's authenticator in step with `definitions.json`, and
//! [`Watcher`], which polls the file for changes made by other processes (the CLI, an
//! editor).
//!
//! Every tick first stores the argon2id hashes the authenticator computed for users who
//! logged in with a legacy hash (RabbitMQ imports, weak argon2 parameters), then reloads the
//! file if its stamp changed. A reload that does not parse or validate is logged and the
//! current definitions stay in force: a typo in a hand edit must not lock everybody out.
//! Changes made in this process ([`Live::change`], the management API) are applied at once,
//! under the same mutex as reloads, so the broker never goes back to an older version.
//!
//! Polling (not inotify) on purpose: the file is tiny, a stamp is one `stat`, and it works
//! the same on every platform and on network file systems. File work runs on the blocking
//! pool: a CLI command may hold the file's lock for a moment.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferrymq_auth::edit::EditError;
use ferrymq_auth::{Definitions, PasswordHash};
use ferrymq_broker::Broker;
use ferrymq_store::{Stamp, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ChangeError, Database};

/// How often the running broker looks at `definitions.json`.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The database as the running broker applies it. Share it as `Arc<Live>`; its methods
/// block (file I/O under a lock): call them from a blocking thread in async code.
#[derive(Debug)]
pub struct Live {
    broker: Arc<Broker>,
    database: Arc<Database>,
    applied: Mutex<Applied>,
}

/// What the authenticator has now.
#[derive(Debug)]
struct Applied {
    definitions: Definitions,
    /// The stamp of the file last looked at (read, or refused).
    stamp: Option<Stamp>,
}

/// A user's legacy hash and its replacement, waiting to be written.
struct Upgrade {
    user: String,
    old: PasswordHash,
    new: PasswordHash,
}

impl Live {
    /// The database of a broker whose authenticator holds `current`, read from `database`
    /// at `stamp`.
    pub fn new(
        broker: Arc<Broker>,
        database: Arc<Database>,
        current: Definitions,
        stamp: Option<Stamp>,
    ) -> Live {
        Live {
            broker,
            database,
            applied: Mutex::new(Applied {
                definitions: current,
                stamp,
            }),
        }
    }

    /// The database file.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The broker it applies to.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The definitions in force, after taking in any change of the file (so a change the CLI
    /// made a moment ago shows at once, not after the next poll).
    pub fn current(&self) -> Definitions {
        let mut applied = self.lock();
        self.reload_locked(&mut applied);
        applied.definitions.clone()
    }

    /// [`Database::change`], then applies the result to the broker at once: connections
    /// re-check their rights now rather than at the next poll.
    pub fn change<R>(
        &self,
        edit: impl FnOnce(&mut Definitions) -> Result<Option<R>, EditError>,
    ) -> Result<Option<R>, ChangeError> {
        let mut applied = self.lock();
        let Some((result, definitions)) = self.database.change(edit)? else {
            return Ok(None);
        };
        // The stamp is left alone: the next look at the file reads this version, finds it
        // equal to what is applied, and does nothing.
        self.apply(&definitions);
        applied.definitions = definitions;
        Ok(Some(result))
    }

    fn apply(&self, definitions: &Definitions) {
        self.broker.auth().replace_definitions(definitions);
        self.broker.definitions_changed();
    }

    /// Reloads the file if its stamp changed (see the module documentation).
    pub fn reload_if_changed(&self) {
        let mut applied = self.lock();
        self.reload_locked(&mut applied);
    }

    fn reload_locked(&self, applied: &mut Applied) {
        let stamp = match self.database.document().stamp() {
            Ok(stamp) => stamp,
            Err(error) => {
                tracing::error!(%error, "cannot look at the definitions file");
                return;
            }
        };
        if stamp == applied.stamp {
            return;
        }
        let path = self.database.path().display().to_string();
        let (definitions, stamp) = match self.database.load() {
            Ok(loaded) => loaded,
            Err(error @ StoreError::Parse { .. }) => {
                tracing::error!(%error, "definitions not reloaded: keeping the current ones");
                // Reported once per version of the file, not every tick.
                applied.stamp = stamp;
                return;
            }
            Err(error) => {
                // Perhaps passing (out of file descriptors): try again next tick.
                tracing::error!(%error, "definitions not reloaded: keeping the current ones");
                return;
            }
        };
        applied.stamp = stamp;
        let problems = definitions.validate();
        if !problems.is_empty() {
            for problem in &problems {
                tracing::error!(file = %path, %problem, "invalid definitions");
            }
            tracing::error!(file = %path, "definitions not reloaded: keeping the current ones");
            return;
        }
        if definitions == applied.definitions {
            return;
        }
        if stamp.is_none() {
            tracing::warn!(file = %path, "the definitions file was removed: the internal database is now empty");
        }
        self.apply(&definitions);
        tracing::info!(
            file = %path,
            "definitions reloaded: {} users, {} vhosts",
            definitions.users.len(),
            definitions.vhosts.len()
        );
        applied.definitions = definitions;
    }

    /// Writes the authenticator's re-hashed passwords into the file, each only if the file
    /// still holds the legacy hash that was verified (an operator may have set a new password
    /// in the meantime, which must win).
    pub fn store_upgraded_hashes(&self) {
        let rehashed = self.broker.auth().take_rehashed();
        if rehashed.is_empty() {
            return;
        }
        let applied = self.lock();
        let upgrades: Vec<Upgrade> = rehashed
            .into_iter()
            .filter_map(|(user, new)| {
                let old = applied.definitions.user(&user)?.password_hash.clone();
                // Only a legacy hash is replaced: never a password set since.
                old.needs_rehash().then_some(Upgrade { user, old, new })
            })
            .collect();
        drop(applied);
        if upgrades.is_empty() {
            return;
        }
        match write_upgrades(&self.database, upgrades) {
            Ok(users) if users.is_empty() => {}
            Ok(users) => tracing::info!(
                ?users,
                file = %self.database.path().display(),
                "password hashes upgraded to argon2id"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot store upgraded password hashes; they will be upgraded at a later login")
            }
        }
    }
}

/// Applies changes of the database file to a running broker. Create it with what the broker
/// was started with, then [`Watcher::spawn`] it (or call [`Watcher::tick`] yourself).
#[derive(Debug, Clone)]
pub struct Watcher {
    live: Arc<Live>,
}

impl Watcher {
    /// A watcher for a broker whose authenticator holds `current`, read from `database` at
    /// `stamp`.
    pub fn new(
        broker: Arc<Broker>,
        database: Arc<Database>,
        current: Definitions,
        stamp: Option<Stamp>,
    ) -> Watcher {
        Watcher {
            live: Arc::new(Live::new(broker, database, current, stamp)),
        }
    }

    /// The live database this watcher keeps in step, for the management API.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Runs [`Watcher::tick`] every `interval` until `shutdown` is cancelled.
    pub fn spawn(self, interval: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick of an interval fires at once; the file was just read.
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                self.tick().await;
            }
            // Hashes upgraded since the last tick would otherwise be computed again at the
            // next start.
            let live = Arc::clone(&self.live);
            let _ = tokio::task::spawn_blocking(move || live.store_upgraded_hashes()).await;
        })
    }

    /// One round: store upgraded hashes, then reload the file if it changed.
    pub async fn tick(&self) {
        let live = Arc::clone(&self.live);
        let done = tokio::task::spawn_blocking(move || {
            live.store_upgraded_hashes();
            live.reload_if_changed();
        });
        if let Err(error) = done.await {
            tracing::error!(%error, "looking at the definitions file failed");
        }
    }
}

/// The users whose hash was replaced.
fn write_upgrades(database: &Database, upgrades: Vec<Upgrade>) -> Result<Vec<String>, StoreError> {
    let outcome = database.document().update(|definitions| {
        let mut upgraded = Vec::new();
        for upgrade in upgrades {
            let Some(user) = definitions
                .users
                .iter_mut()
                .find(|user| user.name == upgrade.user)
            else {
                continue;
            };
            if user.password_hash == upgrade.old {
                user.password_hash = upgrade.new;
                upgraded.push(upgrade.user);
            }
        }
        let save = !upgraded.is_empty();
        Ok::<_, std::convert::Infallible>(save.then_some(upgraded))
    })?;
    Ok(match outcome {
        Ok(upgraded) => upgraded.unwrap_or_default(),
        Err(never) => match never {},
    })
}
