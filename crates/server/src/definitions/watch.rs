//! [`Watcher`]: keeps the running broker's authenticator in step with `definitions.json`.
//!
//! Every tick it first stores the argon2id hashes the authenticator computed for users who
//! logged in with a legacy hash (RabbitMQ imports, weak argon2 parameters), then reloads the
//! file if its stamp changed. A reload that does not parse or validate is logged and the
//! current definitions stay in force: a typo in a hand edit must not lock everybody out.
//!
//! Polling (not inotify) on purpose: the file is tiny, a stamp is one `stat`, and it works
//! the same on every platform and on network file systems. File work runs on the blocking
//! pool: a CLI command may hold the file's lock for a moment.

use std::sync::Arc;
use std::time::Duration;

use ferrymq_auth::{Definitions, PasswordHash};
use ferrymq_broker::Broker;
use ferrymq_store::{Stamp, StoreError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Database;

/// How often the running broker looks at `definitions.json`.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Applies changes of the database file to a running broker. Create it with what the broker
/// was started with, then [`Watcher::spawn`] it (or call [`Watcher::tick`] yourself).
pub struct Watcher {
    broker: Arc<Broker>,
    database: Arc<Database>,
    /// What the authenticator has now.
    current: Definitions,
    /// The stamp of the file `current` was read from (or of the last version refused).
    stamp: Option<Stamp>,
}

/// A user's legacy hash and its replacement, waiting to be written.
struct Upgrade {
    user: String,
    old: PasswordHash,
    new: PasswordHash,
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
            broker,
            database,
            current,
            stamp,
        }
    }

    /// Runs [`Watcher::tick`] every `interval` until `shutdown` is cancelled.
    pub fn spawn(mut self, interval: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
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
            self.store_upgraded_hashes().await;
        })
    }

    /// One round: store upgraded hashes, then reload the file if it changed.
    pub async fn tick(&mut self) {
        self.store_upgraded_hashes().await;
        self.reload_if_changed().await;
    }

    /// Writes the authenticator's re-hashed passwords into the file, each only if the file
    /// still holds the legacy hash that was verified (an operator may have set a new password
    /// in the meantime, which must win).
    async fn store_upgraded_hashes(&mut self) {
        let rehashed = self.broker.auth().take_rehashed();
        if rehashed.is_empty() {
            return;
        }
        let upgrades: Vec<Upgrade> = rehashed
            .into_iter()
            .filter_map(|(user, new)| {
                let old = self.current.user(&user)?.password_hash.clone();
                // Only a legacy hash is replaced: never a password set since.
                old.needs_rehash().then_some(Upgrade { user, old, new })
            })
            .collect();
        if upgrades.is_empty() {
            return;
        }
        let database = Arc::clone(&self.database);
        let written = tokio::task::spawn_blocking(move || write_upgrades(&database, upgrades));
        match written.await {
            Ok(Ok(users)) if users.is_empty() => {}
            Ok(Ok(users)) => tracing::info!(
                ?users,
                file = %self.database.path().display(),
                "password hashes upgraded to argon2id"
            ),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot store upgraded password hashes; they will be upgraded at a later login")
            }
            Err(error) => tracing::error!(%error, "storing upgraded password hashes failed"),
        }
    }

    async fn reload_if_changed(&mut self) {
        let database = Arc::clone(&self.database);
        let stamp = match database.document().stamp() {
            Ok(stamp) => stamp,
            Err(error) => {
                tracing::error!(%error, "cannot look at the definitions file");
                return;
            }
        };
        if stamp == self.stamp {
            return;
        }
        let path = database.path().display().to_string();
        let loaded = match tokio::task::spawn_blocking(move || database.load()).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "reading the definitions file failed");
                return;
            }
        };
        let (definitions, stamp) = match loaded {
            Ok(loaded) => loaded,
            Err(error @ StoreError::Parse { .. }) => {
                tracing::error!(%error, "definitions not reloaded: keeping the current ones");
                // Reported once per version of the file, not every tick.
                self.stamp = stamp;
                return;
            }
            Err(error) => {
                // Perhaps passing (out of file descriptors): try again next tick.
                tracing::error!(%error, "definitions not reloaded: keeping the current ones");
                return;
            }
        };
        self.stamp = stamp;
        let problems = definitions.validate();
        if !problems.is_empty() {
            for problem in &problems {
                tracing::error!(file = %path, %problem, "invalid definitions");
            }
            tracing::error!(file = %path, "definitions not reloaded: keeping the current ones");
            return;
        }
        if definitions == self.current {
            return;
        }
        if stamp.is_none() {
            tracing::warn!(file = %path, "the definitions file was removed: the internal database is now empty");
        }
        self.broker.auth().replace_definitions(&definitions);
        self.broker.definitions_changed();
        tracing::info!(
            file = %path,
            "definitions reloaded: {} users, {} vhosts",
            definitions.users.len(),
            definitions.vhosts.len()
        );
        self.current = definitions;
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
