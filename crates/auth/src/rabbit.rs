//! RabbitMQ definitions import: a pure transformation from the JSON that
//! `rabbitmqctl export_definitions` (or `GET /api/definitions`) writes into our
//! [`Definitions`], with a warning for everything that does not carry over exactly.
//!
//! What translates:
//! - users: password hashes unchanged, with the algorithm from `hashing_algorithm` (absent:
//!   MD5 for exports of RabbitMQ 3.0–3.5, SHA-256 otherwise, as RabbitMQ assumes); tags
//!   (list or comma-separated string, or the legacy `administrator` flag); `limits` →
//!   `max-connections` (negative = no limit);
//! - vhosts: name, description; `max-connections` from `vhost-limits` parameters;
//! - `permissions`: RabbitMQ's MQTT plugin needs *write* on the topic exchange to publish and
//!   *read* to subscribe. A write regex matching everything (`.*`) grants publish `#`, a read
//!   regex matching everything grants subscribe `#`; `^$` and `""` grant nothing; any other
//!   regex grants nothing and warns (we cannot tell which exchanges it meant);
//! - `topic_permissions` on `amq.topic` (the MQTT plugin's exchange) narrow those grants to
//!   the filters their regexes translate to (see `regex`); an untranslatable regex warns and
//!   grants nothing in that direction: deny by default.
//!
//! Everything else (queues, exchanges, bindings, policies, parameters other than vhost
//! limits) has no MQTT meaning here and is counted in one warning.

mod regex;

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::definitions::{Definitions, PermissionRecord, Tag, UserRecord, VhostRecord};
use crate::password_hash::PasswordHash;
use crate::permissions::{Permissions, TopicRules};

use self::regex::{Translation, matches_everything, matches_nothing, translate};

/// The exchange RabbitMQ's MQTT plugin publishes to by default.
pub const MQTT_EXCHANGE: &str = "amq.topic";

/// Why a document could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The top level is not an object.
    #[error("a definitions document is a JSON object")]
    NotAnObject,
    /// A known section is not an array.
    #[error("\"{0}\" must be an array")]
    NotAnArray(&'static str),
}

/// Something that did not carry over exactly; the import went on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportWarning {
    /// An entry of a section lacks a required field or has the wrong type; it was skipped.
    InvalidEntry {
        /// `users`, `vhosts`, `permissions`, `topic_permissions`, `parameters`.
        section: &'static str,
        /// Position in the section.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user name FerryMQ cannot use (empty, or containing `:`, which separates
    /// `vhost:user`); the user and its permissions were skipped.
    InvalidUserName(String),
    /// A user or vhost defined twice; the first definition was kept.
    Duplicate {
        /// `user` or `vhost`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// No `hashing_algorithm`: the algorithm RabbitMQ would assume was used.
    AssumedHashingAlgorithm {
        /// The user.
        user: String,
        /// The algorithm assumed (`rabbit_password_hashing_md5` or `..._sha256`).
        algorithm: &'static str,
    },
    /// A hash this build cannot verify (unknown algorithm or malformed); the user was
    /// imported without a password.
    UnusablePasswordHash {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// A permission or topic permission for a user or vhost not in the document; skipped.
    UnknownReference {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// A regex with no exact translation; nothing was granted for it.
    UntranslatableRegex {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// `write` or `read` of `permissions`, `topic write` or `topic read`.
        field: &'static str,
        /// The regex as written.
        regex: String,
        /// Why.
        reason: String,
    },
    /// Topic permissions on an exchange other than `amq.topic`; they do not concern MQTT.
    IgnoredExchange {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// The exchange.
        exchange: String,
    },
    /// Topic permissions for a (user, vhost) without `permissions`: RabbitMQ would not let
    /// the user into the vhost at all, so they grant nothing.
    TopicPermissionsWithoutAccess {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// Sections with no MQTT meaning, with their entry counts.
    IgnoredSections(Vec<(String, usize)>),
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportWarning::InvalidEntry {
                section,
                index,
                reason,
            } => write!(f, "{section}[{index}] skipped: {reason}"),
            ImportWarning::InvalidUserName(name) => write!(
                f,
                "user {name:?} skipped: a user name must be non-empty and contain no ':'"
            ),
            ImportWarning::Duplicate { kind, name } => {
                write!(
                    f,
                    "{kind} {name:?} is defined twice; the first definition was kept"
                )
            }
            ImportWarning::AssumedHashingAlgorithm { user, algorithm } => write!(
                f,
                "user {user:?} has no hashing_algorithm; assumed {algorithm} as RabbitMQ does"
            ),
            ImportWarning::UnusablePasswordHash { user, reason } => write!(
                f,
                "user {user:?} imported without a password ({reason}); set one before it logs in"
            ),
            ImportWarning::UnknownReference { user, vhost } => write!(
                f,
                "permissions of user {user:?} in vhost {vhost:?} skipped: the user or vhost is not in the file"
            ),
            ImportWarning::UntranslatableRegex {
                user,
                vhost,
                field,
                regex,
                reason,
            } => write!(
                f,
                "user {user:?} in vhost {vhost:?}: {field} regex {regex:?} has no exact MQTT \
                 translation ({reason}); nothing granted for it"
            ),
            ImportWarning::IgnoredExchange {
                user,
                vhost,
                exchange,
            } => write!(
                f,
                "topic permissions of user {user:?} in vhost {vhost:?} on exchange {exchange:?} \
                 ignored: MQTT uses {MQTT_EXCHANGE}"
            ),
            ImportWarning::TopicPermissionsWithoutAccess { user, vhost } => write!(
                f,
                "topic permissions of user {user:?} in vhost {vhost:?} ignored: the user has no \
                 permissions in that vhost"
            ),
            ImportWarning::IgnoredSections(sections) => {
                f.write_str("ignored (no MQTT meaning):")?;
                for (i, (name, count)) in sections.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{count} {name}")?;
                }
                Ok(())
            }
        }
    }
}

/// Imports a RabbitMQ definitions export. Only a document that is not a JSON object (or
/// whose known sections are not arrays) is an error; everything else that does not carry
/// over exactly is skipped with a warning. Call [`Definitions::validate`] on the result
/// before storing it.
pub fn import(json: &str) -> Result<(Definitions, Vec<ImportWarning>), ImportError> {
    let root: Value = serde_json::from_str(json).map_err(|e| ImportError::Json(e.to_string()))?;
    let root = root.as_object().ok_or(ImportError::NotAnObject)?;
    let mut import = Importer {
        warnings: Vec::new(),
        legacy_md5: is_pre_3_6(root),
    };
    let users = import.users(section(root, "users")?);
    let vhosts = import.vhosts(section(root, "vhosts")?, section(root, "parameters")?);
    let topic = import.topic_permissions(section(root, "topic_permissions")?, &users, &vhosts);
    let permissions = import.permissions(section(root, "permissions")?, &users, &vhosts, topic);
    import.ignored_sections(root);
    let definitions = Definitions {
        users,
        vhosts,
        permissions,
    };
    Ok((definitions, import.warnings))
}

fn section<'a>(
    root: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a [Value], ImportError> {
    match root.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ImportError::NotAnArray(name)),
    }
}

/// RabbitMQ before 3.6 hashed with MD5 and did not export `hashing_algorithm`.
fn is_pre_3_6(root: &Map<String, Value>) -> bool {
    let version = ["rabbit_version", "rabbitmq_version"]
        .iter()
        .find_map(|key| root.get(*key).and_then(Value::as_str))
        .unwrap_or("");
    ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."]
        .iter()
        .any(|prefix| version.starts_with(prefix))
}

/// The directions a topic permission narrows; `None` = no topic permission there.
type TopicGrants = HashMap<(String, String), (Vec<String>, Vec<String>)>;

struct Importer {
    warnings: Vec<ImportWarning>,
    legacy_md5: bool,
}

impl Importer {
    fn users(&mut self, items: &[Value]) -> Vec<UserRecord> {
        let mut users: Vec<UserRecord> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some((entry, name)) = self.entry("users", index, item, "name") else {
                continue;
            };
            if name.is_empty() || name.contains(':') {
                self.warnings.push(ImportWarning::InvalidUserName(name));
                continue;
            }
            if users.iter().any(|u| u.name == name) {
                self.warnings
                    .push(ImportWarning::Duplicate { kind: "user", name });
                continue;
            }
            let password_hash = self.password_hash(&name, entry);
            let tags = match entry.get("tags") {
                Some(Value::Array(tags)) => tags
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(Tag::parse)
                    .collect(),
                Some(Value::String(tags)) => Tag::parse_list(tags),
                _ => match entry.get("administrator") {
                    Some(Value::Bool(true)) => vec![Tag::Administrator],
                    Some(Value::String(flag)) if flag == "true" => vec![Tag::Administrator],
                    _ => Vec::new(),
                },
            };
            let max_connections = entry.get("limits").and_then(max_connections);
            users.push(UserRecord {
                name,
                password_hash,
                tags,
                max_connections,
            });
        }
        users
    }

    fn password_hash(&mut self, user: &str, entry: &Map<String, Value>) -> PasswordHash {
        let hash = match entry.get("password_hash") {
            None | Some(Value::Null) => return PasswordHash::None,
            Some(Value::String(hash)) if hash.is_empty() => return PasswordHash::None,
            Some(Value::String(hash)) => hash.clone(),
            Some(_) => {
                // Not silently "no password": the operator should learn the user cannot log in.
                self.warnings.push(ImportWarning::UnusablePasswordHash {
                    user: user.to_owned(),
                    reason: "password_hash is not a string".to_owned(),
                });
                return PasswordHash::None;
            }
        };
        let algorithm = match entry.get("hashing_algorithm").and_then(Value::as_str) {
            Some(algorithm) => algorithm,
            None => {
                let assumed = if self.legacy_md5 {
                    "rabbit_password_hashing_md5"
                } else {
                    "rabbit_password_hashing_sha256"
                };
                self.warnings.push(ImportWarning::AssumedHashingAlgorithm {
                    user: user.to_owned(),
                    algorithm: assumed,
                });
                assumed
            }
        };
        let parsed = match algorithm {
            "rabbit_password_hashing_sha256" => PasswordHash::RabbitSha256(hash),
            "rabbit_password_hashing_sha512" => PasswordHash::RabbitSha512(hash),
            "rabbit_password_hashing_md5" => PasswordHash::RabbitMd5(hash),
            other => {
                self.warnings.push(ImportWarning::UnusablePasswordHash {
                    user: user.to_owned(),
                    reason: format!("unknown hashing_algorithm {other:?}"),
                });
                return PasswordHash::None;
            }
        };
        match parsed.check() {
            Ok(()) => parsed,
            Err(reason) => {
                self.warnings.push(ImportWarning::UnusablePasswordHash {
                    user: user.to_owned(),
                    reason,
                });
                PasswordHash::None
            }
        }
    }

    fn vhosts(&mut self, items: &[Value], parameters: &[Value]) -> Vec<VhostRecord> {
        let mut vhosts: Vec<VhostRecord> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some((entry, name)) = self.entry("vhosts", index, item, "name") else {
                continue;
            };
            if name.is_empty() {
                self.warnings.push(ImportWarning::InvalidEntry {
                    section: "vhosts",
                    index,
                    reason: "the name is empty".to_owned(),
                });
                continue;
            }
            if vhosts.iter().any(|v| v.name == name) {
                self.warnings.push(ImportWarning::Duplicate {
                    kind: "vhost",
                    name,
                });
                continue;
            }
            // 3.x writes it at the top level, newer versions (also) in `metadata`.
            let description = [
                entry.get("description"),
                entry.get("metadata").and_then(|m| m.get("description")),
            ]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|d| !d.is_empty())
            .unwrap_or_default()
            .to_owned();
            let max_connections = entry.get("limits").and_then(max_connections);
            vhosts.push(VhostRecord {
                name,
                description,
                max_connections,
            });
        }
        for (index, item) in parameters.iter().enumerate() {
            let Some(entry) = item.as_object() else {
                continue;
            };
            if entry.get("component").and_then(Value::as_str) != Some("vhost-limits") {
                continue;
            }
            let vhost = entry.get("vhost").and_then(Value::as_str);
            match vhosts.iter_mut().find(|v| Some(v.name.as_str()) == vhost) {
                Some(record) => {
                    record.max_connections = entry.get("value").and_then(max_connections);
                }
                None => self.warnings.push(ImportWarning::InvalidEntry {
                    section: "parameters",
                    index,
                    reason: format!("vhost-limits for unknown vhost {vhost:?}"),
                }),
            }
        }
        vhosts
    }

    /// Topic permissions on `amq.topic`, translated, per (user, vhost): (publish, subscribe).
    /// A direction whose regex is untranslatable translates to no filters.
    fn topic_permissions(
        &mut self,
        items: &[Value],
        users: &[UserRecord],
        vhosts: &[VhostRecord],
    ) -> TopicGrants {
        let mut grants = TopicGrants::new();
        for (index, item) in items.iter().enumerate() {
            let Some((entry, user, vhost)) = self.user_vhost("topic_permissions", index, item)
            else {
                continue;
            };
            if !known(users, vhosts, &user, &vhost) {
                self.warnings
                    .push(ImportWarning::UnknownReference { user, vhost });
                continue;
            }
            let exchange = entry.get("exchange").and_then(Value::as_str).unwrap_or("");
            if exchange != MQTT_EXCHANGE {
                self.warnings.push(ImportWarning::IgnoredExchange {
                    user,
                    vhost,
                    exchange: exchange.to_owned(),
                });
                continue;
            }
            let publish = self.topic_filters(&user, &vhost, "topic write", entry.get("write"));
            let subscribe = self.topic_filters(&user, &vhost, "topic read", entry.get("read"));
            grants.insert((user, vhost), (publish, subscribe));
        }
        grants
    }

    fn topic_filters(
        &mut self,
        user: &str,
        vhost: &str,
        field: &'static str,
        regex: Option<&Value>,
    ) -> Vec<String> {
        let regex = regex.and_then(Value::as_str).unwrap_or("");
        match translate(regex) {
            Ok(Translation::Filters(filters)) => filters,
            Ok(Translation::Nothing) => Vec::new(),
            Err(reason) => {
                self.warnings.push(ImportWarning::UntranslatableRegex {
                    user: user.to_owned(),
                    vhost: vhost.to_owned(),
                    field,
                    regex: regex.to_owned(),
                    reason,
                });
                Vec::new()
            }
        }
    }

    fn permissions(
        &mut self,
        items: &[Value],
        users: &[UserRecord],
        vhosts: &[VhostRecord],
        mut topic: TopicGrants,
    ) -> Vec<PermissionRecord> {
        let mut records: Vec<PermissionRecord> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some((entry, user, vhost)) = self.user_vhost("permissions", index, item) else {
                continue;
            };
            if !known(users, vhosts, &user, &vhost) {
                self.warnings
                    .push(ImportWarning::UnknownReference { user, vhost });
                continue;
            }
            if records.iter().any(|r| r.user == user && r.vhost == vhost) {
                continue;
            }
            let may_write = self.grants_all(&user, &vhost, "write", entry.get("write"));
            let may_read = self.grants_all(&user, &vhost, "read", entry.get("read"));
            let narrowed = topic.remove(&(user.clone(), vhost.clone()));
            let (publish, subscribe) = match narrowed {
                Some((publish, subscribe)) => (publish, subscribe),
                None => (vec!["#".to_owned()], vec!["#".to_owned()]),
            };
            let permissions = Permissions {
                publish: rules(if may_write { publish } else { Vec::new() }),
                subscribe: rules(if may_read { subscribe } else { Vec::new() }),
                read_sys: false,
            };
            records.push(PermissionRecord {
                user,
                vhost,
                permissions,
            });
        }
        let mut orphans: Vec<(String, String)> = topic.into_keys().collect();
        orphans.sort();
        for (user, vhost) in orphans {
            self.warnings
                .push(ImportWarning::TopicPermissionsWithoutAccess { user, vhost });
        }
        records
    }

    /// A resource-permission regex: does it grant access to the MQTT exchange and queues?
    fn grants_all(
        &mut self,
        user: &str,
        vhost: &str,
        field: &'static str,
        regex: Option<&Value>,
    ) -> bool {
        let regex = regex.and_then(Value::as_str).unwrap_or("");
        if matches_everything(regex) {
            return true;
        }
        if !matches_nothing(regex) {
            self.warnings.push(ImportWarning::UntranslatableRegex {
                user: user.to_owned(),
                vhost: vhost.to_owned(),
                field,
                regex: regex.to_owned(),
                reason:
                    "only '.*' (everything) and '^$' (nothing) carry over for resource permissions"
                        .to_owned(),
            });
        }
        false
    }

    fn ignored_sections(&mut self, root: &Map<String, Value>) {
        let ignored: Vec<(String, usize)> = root
            .iter()
            .filter(|(key, _)| {
                !matches!(
                    key.as_str(),
                    "users"
                        | "vhosts"
                        | "permissions"
                        | "topic_permissions"
                        | "rabbit_version"
                        | "rabbitmq_version"
                        | "product_name"
                        | "product_version"
                        | "rabbitmq_definition_format"
                        | "original_cluster_name"
                        | "explanation"
                )
            })
            .filter_map(|(key, value)| {
                let count = match (key.as_str(), value.as_array()) {
                    ("parameters", Some(items)) => items
                        .iter()
                        .filter(|p| {
                            p.get("component").and_then(Value::as_str) != Some("vhost-limits")
                        })
                        .count(),
                    (_, Some(items)) => items.len(),
                    (_, None) => 0,
                };
                (count > 0).then(|| (key.clone(), count))
            })
            .collect();
        if !ignored.is_empty() {
            self.warnings.push(ImportWarning::IgnoredSections(ignored));
        }
    }

    /// An object entry with a string field `key`, or a warning.
    fn entry<'a>(
        &mut self,
        section: &'static str,
        index: usize,
        item: &'a Value,
        key: &str,
    ) -> Option<(&'a Map<String, Value>, String)> {
        let entry = item.as_object();
        let value = entry.and_then(|e| e.get(key)).and_then(Value::as_str);
        match (entry, value) {
            (Some(entry), Some(value)) => Some((entry, value.to_owned())),
            _ => {
                self.warnings.push(ImportWarning::InvalidEntry {
                    section,
                    index,
                    reason: format!("not an object with a string \"{key}\""),
                });
                None
            }
        }
    }

    fn user_vhost<'a>(
        &mut self,
        section: &'static str,
        index: usize,
        item: &'a Value,
    ) -> Option<(&'a Map<String, Value>, String, String)> {
        let (entry, user) = self.entry(section, index, item, "user")?;
        let (_, vhost) = self.entry(section, index, item, "vhost")?;
        Some((entry, user, vhost))
    }
}

fn known(users: &[UserRecord], vhosts: &[VhostRecord], user: &str, vhost: &str) -> bool {
    users.iter().any(|u| u.name == user) && vhosts.iter().any(|v| v.name == vhost)
}

fn rules(allow: Vec<String>) -> TopicRules {
    TopicRules {
        allow,
        deny: Vec::new(),
    }
}

/// `{"max-connections": n}`: negative means no limit (RabbitMQ's convention).
fn max_connections(limits: &Value) -> Option<u32> {
    let n = limits.get("max-connections")?.as_i64()?;
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests;
