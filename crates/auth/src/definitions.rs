//! The internal database's model: users (with tags, password hash and connection limit),
//! virtual hosts (with connection limit) and per-(user, vhost) permissions, plus our JSON
//! export format.
//!
//! These are plain serde types; storing them is the store crate's job, enforcing limits the
//! broker's. [`Definitions::validate`] is the one place that says what a consistent set is,
//! so that `import-definitions`, the management API and start-up refuse the same things.
//!
//! Export format (`export`): pretty JSON, `{"ferrymq_definitions": 1, "users": [...],
//! "vhosts": [...], "permissions": [...]}`, each element as the types below serialize.

use std::collections::HashSet;

use crate::password_hash::PasswordHash;
use crate::permissions::{Permissions, PermissionsError};

/// The version written in the `ferrymq_definitions` field of an export.
pub const FORMAT_VERSION: u32 = 1;

/// A user tag, as RabbitMQ has them. Tags grant management rights (the management API
/// decides what each means); they grant nothing on topics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// Everything, including users, vhosts and permissions.
    Administrator,
    /// May use the management API for its own vhosts.
    Management,
    /// Management plus read access to every connection and node metric.
    Monitoring,
    /// Management plus policies and parameters of its vhosts.
    Policymaker,
    /// Any other tag, kept as written (RabbitMQ allows arbitrary tags).
    Custom(String),
}

impl Tag {
    /// The tag as written in definitions.
    pub fn as_str(&self) -> &str {
        match self {
            Tag::Administrator => "administrator",
            Tag::Management => "management",
            Tag::Monitoring => "monitoring",
            Tag::Policymaker => "policymaker",
            Tag::Custom(other) => other,
        }
    }

    /// Parses one tag; `None` for `none` and the empty string, which RabbitMQ uses to mean
    /// "no tag".
    pub fn parse(text: &str) -> Option<Tag> {
        let text = text.trim();
        Some(match text {
            "" | "none" => return None,
            "administrator" => Tag::Administrator,
            "management" => Tag::Management,
            "monitoring" => Tag::Monitoring,
            "policymaker" => Tag::Policymaker,
            other => Tag::Custom(other.to_owned()),
        })
    }

    /// Parses RabbitMQ's comma-separated form (`"administrator,management"`).
    pub fn parse_list(text: &str) -> Vec<Tag> {
        text.split(',').filter_map(Tag::parse).collect()
    }
}

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tag, D::Error> {
        let text = String::deserialize(deserializer)?;
        Tag::parse(&text).ok_or_else(|| serde::de::Error::custom("\"none\" is not a tag"))
    }
}

/// A user of the internal database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// The MQTT username; non-empty, no `:` (it separates `vhost:user`).
    pub name: String,
    /// The stored hash.
    pub password_hash: PasswordHash,
    /// Management tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Most concurrent connections of this user across all vhosts; `None` = no limit,
    /// `Some(0)` = may not connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// A virtual host: an isolated topic space with its own sessions and retained messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VhostRecord {
    /// The name (`/` is the default vhost).
    pub name: String,
    /// Free text for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Most concurrent connections in this vhost; `None` = no limit, `Some(0)` = closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// What one user may do in one vhost. A user without a record for a vhost may not connect
/// to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PermissionRecord {
    /// The user's name.
    pub user: String,
    /// The vhost's name.
    pub vhost: String,
    /// The topic rights.
    pub permissions: Permissions,
}

/// Everything the internal database holds about access control.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Definitions {
    /// Users, names unique.
    #[serde(default)]
    pub users: Vec<UserRecord>,
    /// Virtual hosts, names unique.
    #[serde(default)]
    pub vhosts: Vec<VhostRecord>,
    /// Permissions, at most one per (user, vhost).
    #[serde(default)]
    pub permissions: Vec<PermissionRecord>,
}

/// An inconsistency found by [`Definitions::validate`] or a document [`import`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionsError {
    /// The JSON does not parse or does not have our shape.
    #[error("definitions are not valid JSON of the expected shape: {0}")]
    Json(String),
    /// The document declares a format version this build does not know.
    #[error(
        "definitions format version {0} is newer than this FerryMQ understands ({FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// A user name is empty or contains `:`.
    #[error("user name {0:?} is invalid: it must be non-empty and contain no ':'")]
    InvalidUserName(String),
    /// A vhost name is empty.
    #[error("a vhost name is empty")]
    EmptyVhostName,
    /// Two users share a name.
    #[error("user {0:?} is defined more than once")]
    DuplicateUser(String),
    /// Two vhosts share a name.
    #[error("vhost {0:?} is defined more than once")]
    DuplicateVhost(String),
    /// A stored hash can never verify.
    #[error("user {user:?}: invalid {algorithm} password hash: {reason}")]
    InvalidPasswordHash {
        /// The user.
        user: String,
        /// The hash's algorithm name.
        algorithm: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A permission names a user that does not exist.
    #[error("permissions for unknown user {user:?} in vhost {vhost:?}")]
    UnknownUser {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// A permission names a vhost that does not exist.
    #[error("permissions of user {user:?} for unknown vhost {vhost:?}")]
    UnknownVhost {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// Two permission records for the same (user, vhost).
    #[error("permissions of user {user:?} in vhost {vhost:?} are defined more than once")]
    DuplicatePermission {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// A permission pattern is invalid.
    #[error("permissions of user {user:?} in vhost {vhost:?}: {error}")]
    InvalidPermissions {
        /// The user.
        user: String,
        /// The vhost.
        vhost: String,
        /// What is wrong.
        error: PermissionsError,
    },
}

impl Definitions {
    /// Every inconsistency, in document order (empty = valid).
    pub fn validate(&self) -> Vec<DefinitionsError> {
        let mut problems = Vec::new();
        let mut users = HashSet::new();
        for user in &self.users {
            if user.name.is_empty() || user.name.contains(':') {
                problems.push(DefinitionsError::InvalidUserName(user.name.clone()));
            } else if !users.insert(user.name.as_str()) {
                problems.push(DefinitionsError::DuplicateUser(user.name.clone()));
            }
            if let Err(reason) = user.password_hash.check() {
                problems.push(DefinitionsError::InvalidPasswordHash {
                    user: user.name.clone(),
                    algorithm: user.password_hash.algorithm(),
                    reason,
                });
            }
        }
        let mut vhosts = HashSet::new();
        for vhost in &self.vhosts {
            if vhost.name.is_empty() {
                problems.push(DefinitionsError::EmptyVhostName);
            } else if !vhosts.insert(vhost.name.as_str()) {
                problems.push(DefinitionsError::DuplicateVhost(vhost.name.clone()));
            }
        }
        let mut pairs = HashSet::new();
        for record in &self.permissions {
            let (user, vhost) = (record.user.clone(), record.vhost.clone());
            if !users.contains(record.user.as_str()) {
                problems.push(DefinitionsError::UnknownUser { user, vhost });
            } else if !vhosts.contains(record.vhost.as_str()) {
                problems.push(DefinitionsError::UnknownVhost { user, vhost });
            } else if !pairs.insert((record.user.as_str(), record.vhost.as_str())) {
                problems.push(DefinitionsError::DuplicatePermission { user, vhost });
            } else if let Err(error) = record.permissions.validate() {
                problems.push(DefinitionsError::InvalidPermissions { user, vhost, error });
            }
        }
        problems
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&UserRecord> {
        self.users.iter().find(|user| user.name == name)
    }

    /// The vhost called `name`.
    pub fn vhost(&self, name: &str) -> Option<&VhostRecord> {
        self.vhosts.iter().find(|vhost| vhost.name == name)
    }

    /// The permissions of `user` in `vhost`; `None` means the user may not use the vhost.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<&Permissions> {
        self.permissions
            .iter()
            .find(|record| record.user == user && record.vhost == vhost)
            .map(|record| &record.permissions)
    }
}

/// Our export document: the definitions plus a format version.
#[derive(serde::Serialize, serde::Deserialize)]
struct Document<D> {
    ferrymq_definitions: Option<u32>,
    #[serde(flatten)]
    definitions: D,
}

/// Writes `definitions` in our JSON format (pretty-printed, stable field order).
pub fn export(definitions: &Definitions) -> String {
    let document = Document {
        ferrymq_definitions: Some(FORMAT_VERSION),
        definitions,
    };
    // Serializing these types cannot fail: every map key is a string and no custom
    // Serialize returns an error.
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// Reads our JSON format (as [`export`] writes it; the version field may be absent). Only
/// the shape is checked here; call [`Definitions::validate`] before using the result.
pub fn import(json: &str) -> Result<Definitions, DefinitionsError> {
    let document: Document<Definitions> =
        serde_json::from_str(json).map_err(|e| DefinitionsError::Json(e.to_string()))?;
    match document.ferrymq_definitions {
        Some(version) if version > FORMAT_VERSION => {
            Err(DefinitionsError::UnsupportedVersion(version))
        }
        _ => Ok(document.definitions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::TopicRules;

    fn sample() -> Definitions {
        Definitions {
            users: vec![
                UserRecord {
                    name: "admin".into(),
                    password_hash: PasswordHash::rabbit_sha256([1, 2, 3, 4], "secret"),
                    tags: vec![Tag::Administrator, Tag::Custom("ops".into())],
                    max_connections: None,
                },
                UserRecord {
                    name: "device".into(),
                    password_hash: PasswordHash::None,
                    tags: vec![],
                    max_connections: Some(2),
                },
            ],
            vhosts: vec![
                VhostRecord {
                    name: "/".into(),
                    description: "Default".into(),
                    max_connections: None,
                },
                VhostRecord {
                    name: "public".into(),
                    description: String::new(),
                    max_connections: Some(1000),
                },
            ],
            permissions: vec![
                PermissionRecord {
                    user: "admin".into(),
                    vhost: "/".into(),
                    permissions: Permissions::full(),
                },
                PermissionRecord {
                    user: "device".into(),
                    vhost: "public".into(),
                    permissions: Permissions {
                        publish: TopicRules {
                            allow: vec!["devices/{client_id}/#".into()],
                            deny: vec![],
                        },
                        subscribe: TopicRules::default(),
                        read_sys: false,
                    },
                },
            ],
        }
    }

    #[test]
    fn export_import_round_trip() {
        let defs = sample();
        assert_eq!(defs.validate(), vec![]);
        let json = export(&defs);
        assert!(json.contains("\"ferrymq_definitions\": 1"), "{json}");
        assert!(json.contains("\"algorithm\": \"rabbit_sha256\""), "{json}");
        assert_eq!(import(&json), Ok(defs.clone()));
        // The version is optional on input; unknown future versions are refused.
        let bare = serde_json::to_string(&defs).unwrap();
        assert_eq!(import(&bare), Ok(defs));
        assert_eq!(
            import(r#"{"ferrymq_definitions": 2}"#),
            Err(DefinitionsError::UnsupportedVersion(2))
        );
        assert!(matches!(import("[1]"), Err(DefinitionsError::Json(_))));
        assert!(matches!(
            import("{\"users\": 3}"),
            Err(DefinitionsError::Json(_))
        ));
        assert_eq!(import("{}"), Ok(Definitions::default()));
    }

    #[test]
    fn lookups() {
        let defs = sample();
        assert_eq!(
            defs.user("device").map(|u| u.max_connections),
            Some(Some(2))
        );
        assert!(defs.user("nobody").is_none());
        assert_eq!(
            defs.vhost("public").and_then(|v| v.max_connections),
            Some(1000)
        );
        assert_eq!(defs.permissions("admin", "/"), Some(&Permissions::full()));
        assert_eq!(defs.permissions("admin", "public"), None);
    }

    #[test]
    fn validation_finds_every_inconsistency() {
        let mut defs = sample();
        defs.users.push(defs.users[0].clone());
        defs.users.push(UserRecord {
            name: "a:b".into(),
            password_hash: PasswordHash::RabbitMd5("short".into()),
            tags: vec![],
            max_connections: None,
        });
        defs.vhosts.push(defs.vhosts[1].clone());
        defs.vhosts.push(VhostRecord {
            name: String::new(),
            description: String::new(),
            max_connections: None,
        });
        let mut bad_perms = Permissions::full();
        bad_perms.publish.allow.push("a/#/b".into());
        defs.permissions.extend([
            PermissionRecord {
                user: "ghost".into(),
                vhost: "/".into(),
                permissions: Permissions::full(),
            },
            PermissionRecord {
                user: "admin".into(),
                vhost: "nowhere".into(),
                permissions: Permissions::full(),
            },
            defs.permissions[0].clone(),
            PermissionRecord {
                user: "device".into(),
                vhost: "/".into(),
                permissions: bad_perms,
            },
        ]);
        let problems = defs.validate();
        let kinds: Vec<&str> = problems
            .iter()
            .map(|p| match p {
                DefinitionsError::DuplicateUser(_) => "dup-user",
                DefinitionsError::InvalidUserName(_) => "bad-name",
                DefinitionsError::InvalidPasswordHash { .. } => "bad-hash",
                DefinitionsError::DuplicateVhost(_) => "dup-vhost",
                DefinitionsError::EmptyVhostName => "empty-vhost",
                DefinitionsError::UnknownUser { .. } => "unknown-user",
                DefinitionsError::UnknownVhost { .. } => "unknown-vhost",
                DefinitionsError::DuplicatePermission { .. } => "dup-perm",
                DefinitionsError::InvalidPermissions { .. } => "bad-perm",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "dup-user",
                "bad-name",
                "bad-hash",
                "dup-vhost",
                "empty-vhost",
                "unknown-user",
                "unknown-vhost",
                "dup-perm",
                "bad-perm"
            ]
        );
    }

    #[test]
    fn tags() {
        assert_eq!(
            Tag::parse_list("administrator, management,none,,custom"),
            vec![
                Tag::Administrator,
                Tag::Management,
                Tag::Custom("custom".into())
            ]
        );
        assert_eq!(
            serde_json::to_string(&vec![Tag::Policymaker, Tag::Monitoring]).unwrap(),
            r#"["policymaker","monitoring"]"#
        );
        assert!(serde_json::from_str::<Tag>("\"none\"").is_err());
    }
}
