//! The changes made to [`Definitions`], as pure functions: add, delete and change users,
//! vhosts and permissions; read an import file in either format and merge it.
//!
//! Both the `ferrymq users|vhosts|permissions|import-definitions` commands and the
//! management HTTP API (`ferrymq-admin`) make their changes through these functions, so the
//! two cannot drift apart; they live here, beside the model, because this crate is the one
//! both can reach. Each change checks what it can say best itself (a user that already
//! exists, an unknown vhost) and leaves overall consistency to [`Definitions::validate`],
//! which the caller runs on the result before saving. No I/O, no printing.

use std::collections::HashMap;
use std::fmt;

use crate::authenticator::DEFAULT_VHOST;
use crate::definitions::{
    self as auth_definitions, Definitions, DefinitionsError, PermissionRecord, Tag, UserRecord,
    VhostRecord,
};
use crate::password_hash::PasswordHash;
use crate::permissions::Permissions;
use crate::rabbit;

/// The description given to the vhost `/` when `users add` creates it.
pub const DEFAULT_VHOST_DESCRIPTION: &str = "Default virtual host";

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// `users add` of a name that exists.
    UserExists(String),
    /// A user that does not exist.
    NoSuchUser(String),
    /// `vhosts add` of a name that exists.
    VhostExists(String),
    /// A vhost that does not exist.
    NoSuchVhost(String),
    /// A new user was given neither a password nor a password hash.
    NoPassword(String),
    /// The result would be inconsistent.
    Invalid(Vec<DefinitionsError>),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditError::UserExists(name) => write!(
                f,
                "user {name:?} already exists (change it with `users set-password` or `users set-tags`)"
            ),
            EditError::NoSuchUser(name) => {
                write!(f, "no user {name:?} (see `ferrymq users list`)")
            }
            EditError::VhostExists(name) => write!(f, "vhost {name:?} already exists"),
            EditError::NoPassword(name) => write!(
                f,
                "a new user needs a password or a password hash (\"\" for none): {name:?}"
            ),
            EditError::NoSuchVhost(name) => {
                write!(f, "no vhost {name:?} (see `ferrymq vhosts list`)")
            }
            EditError::Invalid(problems) => {
                write!(f, "the result would be invalid, nothing was changed:")?;
                for problem in problems {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for EditError {}

/// [`Definitions::validate`] as an [`EditError`].
pub fn validate(definitions: &Definitions) -> Result<(), EditError> {
    let problems = definitions.validate();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EditError::Invalid(problems))
    }
}

/// Adds a user. On a database without any vhost, also creates the default vhost `/` (as
/// RabbitMQ's first start does), so that `permissions set` works right away; returns
/// whether it did.
pub fn add_user(definitions: &mut Definitions, user: UserRecord) -> Result<bool, EditError> {
    if definitions.user(&user.name).is_some() {
        return Err(EditError::UserExists(user.name));
    }
    definitions.users.push(user);
    let create_default = definitions.vhosts.is_empty();
    if create_default {
        definitions.vhosts.push(VhostRecord {
            name: DEFAULT_VHOST.to_owned(),
            description: DEFAULT_VHOST_DESCRIPTION.to_owned(),
            max_connections: None,
        });
    }
    Ok(create_default)
}

/// Deletes a user and its permissions; returns how many permission records went with it.
pub fn delete_user(definitions: &mut Definitions, name: &str) -> Result<usize, EditError> {
    let before = definitions.users.len();
    definitions.users.retain(|user| user.name != name);
    if definitions.users.len() == before {
        return Err(EditError::NoSuchUser(name.to_owned()));
    }
    let permissions = definitions.permissions.len();
    definitions.permissions.retain(|record| record.user != name);
    Ok(permissions - definitions.permissions.len())
}

fn user_mut<'d>(
    definitions: &'d mut Definitions,
    name: &str,
) -> Result<&'d mut UserRecord, EditError> {
    definitions
        .users
        .iter_mut()
        .find(|user| user.name == name)
        .ok_or_else(|| EditError::NoSuchUser(name.to_owned()))
}

/// Replaces a user's password hash.
pub fn set_password(
    definitions: &mut Definitions,
    name: &str,
    hash: PasswordHash,
) -> Result<(), EditError> {
    user_mut(definitions, name)?.password_hash = hash;
    Ok(())
}

/// Replaces a user's tags (duplicates dropped, order kept).
pub fn set_tags(
    definitions: &mut Definitions,
    name: &str,
    tags: Vec<Tag>,
) -> Result<(), EditError> {
    user_mut(definitions, name)?.tags = dedup(tags);
    Ok(())
}

/// Replaces a user's connection limit (`None`: no limit).
pub fn set_user_max_connections(
    definitions: &mut Definitions,
    name: &str,
    max_connections: Option<u32>,
) -> Result<(), EditError> {
    user_mut(definitions, name)?.max_connections = max_connections;
    Ok(())
}

/// `tags` without repeats, first occurrence kept.
pub fn dedup(tags: Vec<Tag>) -> Vec<Tag> {
    let mut unique: Vec<Tag> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !unique.contains(&tag) {
            unique.push(tag);
        }
    }
    unique
}

/// Adds a vhost.
pub fn add_vhost(definitions: &mut Definitions, vhost: VhostRecord) -> Result<(), EditError> {
    if definitions.vhost(&vhost.name).is_some() {
        return Err(EditError::VhostExists(vhost.name));
    }
    definitions.vhosts.push(vhost);
    Ok(())
}

/// Changes a vhost's description and connection limit; `None` leaves a field as it is.
pub fn update_vhost(
    definitions: &mut Definitions,
    name: &str,
    description: Option<String>,
    max_connections: Option<Option<u32>>,
) -> Result<(), EditError> {
    let vhost = definitions
        .vhosts
        .iter_mut()
        .find(|vhost| vhost.name == name)
        .ok_or_else(|| EditError::NoSuchVhost(name.to_owned()))?;
    if let Some(description) = description {
        vhost.description = description;
    }
    if let Some(max_connections) = max_connections {
        vhost.max_connections = max_connections;
    }
    Ok(())
}

/// Deletes a vhost and every permission in it; returns how many permission records went.
pub fn delete_vhost(definitions: &mut Definitions, name: &str) -> Result<usize, EditError> {
    let before = definitions.vhosts.len();
    definitions.vhosts.retain(|vhost| vhost.name != name);
    if definitions.vhosts.len() == before {
        return Err(EditError::NoSuchVhost(name.to_owned()));
    }
    let permissions = definitions.permissions.len();
    definitions
        .permissions
        .retain(|record| record.vhost != name);
    Ok(permissions - definitions.permissions.len())
}

/// Sets (replaces) what `user` may do in `vhost`; returns whether it replaced a record.
pub fn set_permissions(
    definitions: &mut Definitions,
    user: &str,
    vhost: &str,
    permissions: Permissions,
) -> Result<bool, EditError> {
    if definitions.user(user).is_none() {
        return Err(EditError::NoSuchUser(user.to_owned()));
    }
    if definitions.vhost(vhost).is_none() {
        return Err(EditError::NoSuchVhost(vhost.to_owned()));
    }
    let existing = definitions
        .permissions
        .iter_mut()
        .find(|record| record.user == user && record.vhost == vhost);
    match existing {
        Some(record) => {
            record.permissions = permissions;
            Ok(true)
        }
        None => {
            definitions.permissions.push(PermissionRecord {
                user: user.to_owned(),
                vhost: vhost.to_owned(),
                permissions,
            });
            Ok(false)
        }
    }
}

/// Removes what `user` may do in `vhost`; `false` when there was nothing to remove.
pub fn clear_permissions(
    definitions: &mut Definitions,
    user: &str,
    vhost: &str,
) -> Result<bool, EditError> {
    if definitions.user(user).is_none() {
        return Err(EditError::NoSuchUser(user.to_owned()));
    }
    if definitions.vhost(vhost).is_none() {
        return Err(EditError::NoSuchVhost(vhost.to_owned()));
    }
    let before = definitions.permissions.len();
    definitions
        .permissions
        .retain(|record| !(record.user == user && record.vhost == vhost));
    Ok(definitions.permissions.len() != before)
}

/// The format of a file given to `import-definitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Ours: what `export-definitions` writes (or `definitions.json` itself).
    Ferrymq,
    /// A RabbitMQ definitions export.
    Rabbitmq,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Ferrymq => "FerryMQ definitions",
            SourceFormat::Rabbitmq => "RabbitMQ definitions",
        })
    }
}

/// Tells the two formats apart: ours carries `ferrymq_definitions` (or, as stored in
/// `definitions.json`, password hashes as `{"algorithm": ..}` objects); RabbitMQ's carries
/// `rabbit_version` / `rabbitmq_version`, or password hashes as plain strings.
pub fn detect(json: &str) -> Result<SourceFormat, String> {
    let root: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let root = root
        .as_object()
        .ok_or("a definitions document is a JSON object")?;
    if root.contains_key("ferrymq_definitions") {
        return Ok(SourceFormat::Ferrymq);
    }
    if ["rabbit_version", "rabbitmq_version"]
        .iter()
        .any(|key| root.contains_key(*key))
    {
        return Ok(SourceFormat::Rabbitmq);
    }
    let hashes: Vec<&serde_json::Value> = root
        .get("users")
        .and_then(|users| users.as_array())
        .into_iter()
        .flatten()
        .filter_map(|user| user.get("password_hash"))
        .collect();
    if hashes.iter().any(|hash| hash.is_string()) {
        return Ok(SourceFormat::Rabbitmq);
    }
    if hashes.iter().any(|hash| hash.is_object()) {
        return Ok(SourceFormat::Ferrymq);
    }
    Err(
        "cannot tell whether this is a FerryMQ or a RabbitMQ definitions file; say which with --format"
            .to_owned(),
    )
}

/// An import file, read.
#[derive(Debug)]
pub struct Imported {
    /// What it defines (not yet validated).
    pub definitions: Definitions,
    /// Everything that did not carry over exactly, for the operator.
    pub warnings: Vec<String>,
    /// The format it was read as.
    pub format: SourceFormat,
}

/// Reads an import file in `format` (`None`: [`detect`] it).
pub fn read_import(json: &str, format: Option<SourceFormat>) -> Result<Imported, String> {
    let format = match format {
        Some(format) => format,
        None => detect(json)?,
    };
    let (definitions, warnings) = match format {
        SourceFormat::Ferrymq => (
            auth_definitions::import(json).map_err(|e| e.to_string())?,
            Vec::new(),
        ),
        SourceFormat::Rabbitmq => {
            let (definitions, warnings) = rabbit::import(json).map_err(|e| e.to_string())?;
            (
                definitions,
                warnings.iter().map(ToString::to_string).collect(),
            )
        }
    };
    Ok(Imported {
        definitions,
        warnings,
        format,
    })
}

/// How many entities an import added and replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeCounts {
    /// Users new to the database.
    pub users_added: usize,
    /// Users that replaced one of the same name.
    pub users_replaced: usize,
    /// Vhosts new to the database.
    pub vhosts_added: usize,
    /// Vhosts that replaced one of the same name.
    pub vhosts_replaced: usize,
    /// Permission records new to the database.
    pub permissions_added: usize,
    /// Permission records that replaced the one of the same (user, vhost).
    pub permissions_replaced: usize,
}

/// Merges `imported` into `definitions`: an entity with the same name (a permission record
/// with the same user and vhost) is replaced, everything else is added. Entities of the
/// database that the import does not mention stay as they are.
pub fn merge(definitions: &mut Definitions, imported: Definitions) -> MergeCounts {
    let mut counts = MergeCounts::default();
    let (added, replaced) = upsert(&mut definitions.users, imported.users, |u| u.name.clone());
    (counts.users_added, counts.users_replaced) = (added, replaced);
    let (added, replaced) = upsert(&mut definitions.vhosts, imported.vhosts, |v| v.name.clone());
    (counts.vhosts_added, counts.vhosts_replaced) = (added, replaced);
    let (added, replaced) = upsert(&mut definitions.permissions, imported.permissions, |p| {
        (p.user.clone(), p.vhost.clone())
    });
    (counts.permissions_added, counts.permissions_replaced) = (added, replaced);
    counts
}

/// Replaces the items of `into` whose key an item of `from` has, appends the others.
fn upsert<T, K: std::hash::Hash + Eq>(
    into: &mut Vec<T>,
    from: Vec<T>,
    key: impl Fn(&T) -> K,
) -> (usize, usize) {
    let mut index: HashMap<K, usize> = into.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    let (mut added, mut replaced) = (0, 0);
    for item in from {
        let k = key(&item);
        match index.get(&k) {
            Some(&i) => {
                into[i] = item;
                replaced += 1;
            }
            None => {
                index.insert(k, into.len());
                into.push(item);
                added += 1;
            }
        }
    }
    (added, replaced)
}

#[cfg(test)]
mod tests;
