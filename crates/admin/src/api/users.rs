//! `GET /api/users`, `GET|PUT|DELETE /api/users/{user}`: the internal database's users.
//! Password hashes are never returned (RabbitMQ returns them; we do not: a hash is an
//! offline guessing target). Users of the config file are not listed and cannot be changed
//! here (409): the file is their truth.

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use ferrymq_auth::edit::{self, EditError};
use ferrymq_auth::{PasswordHash, Tag, UserRecord};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::blocking;
use super::body::JsonBody;
use super::caller::Caller;
use super::error::ApiError;
use crate::State;

/// `GET /api/users` (administrators and monitoring users).
pub(crate) async fn list(
    caller: Caller,
    Extract(state): Extract<State>,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_reads_everything()?;
    let definitions = blocking(move || Ok(state.live.current())).await?;
    Ok(Json(definitions.users.iter().map(to_json).collect()))
}

/// `GET /api/users/{user}` (administrators and monitoring users).
pub(crate) async fn show(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_reads_everything()?;
    let definitions = blocking(move || Ok(state.live.current())).await?;
    definitions
        .user(&name)
        .map(|user| Json(to_json(user)))
        .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))
}

fn to_json(user: &UserRecord) -> Value {
    json!({
        "name": user.name,
        "tags": user.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
        "max_connections": user.max_connections,
        "hashing_algorithm": user.password_hash.algorithm(),
    })
}

/// The body of `PUT /api/users/{user}`. Absent fields keep their value on an existing user;
/// a new user needs `password` or `password_hash`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    /// The password, hashed here with argon2id; never stored or logged.
    password: Option<String>,
    /// A stored hash: our `{"algorithm": .., "hash": ..}`, an argon2 PHC string, or a
    /// RabbitMQ hash (with `hashing_algorithm`); `""` for no password.
    password_hash: Option<HashInput>,
    /// RabbitMQ's name for the algorithm of a string `password_hash`.
    hashing_algorithm: Option<String>,
    /// A list, or RabbitMQ's comma-separated string.
    tags: Option<TagsInput>,
    /// `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    max_connections: Option<Option<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HashInput {
    Text(String),
    Tagged(PasswordHash),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TagsInput {
    List(Vec<String>),
    Text(String),
}

/// Tells `"field": null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl UserBody {
    fn tags(&self) -> Option<Vec<Tag>> {
        let tags = match self.tags.as_ref()? {
            TagsInput::List(list) => list.iter().filter_map(|t| Tag::parse(t)).collect(),
            TagsInput::Text(text) => Tag::parse_list(text),
        };
        Some(edit::dedup(tags))
    }

    /// The new hash, if the body sets one. Hashing a password is slow: call this on a
    /// blocking thread.
    fn hash(&self) -> Result<Option<PasswordHash>, ApiError> {
        match (&self.password, &self.password_hash) {
            (Some(_), Some(_)) => Err(ApiError::unprocessable(
                "give either password or password_hash, not both",
            )),
            (Some(password), None) if password.is_empty() => Err(ApiError::unprocessable(
                "the password is empty (password_hash \"\" makes a user without a password)",
            )),
            (Some(password), None) => Ok(Some(PasswordHash::argon2id(password))),
            (None, Some(HashInput::Tagged(hash))) => Ok(Some(hash.clone())),
            (None, Some(HashInput::Text(text))) => {
                text_hash(text, self.hashing_algorithm.as_deref()).map(Some)
            }
            (None, None) => Ok(None),
        }
    }
}

/// A hash given as text: empty = no password; an argon2 PHC string; else RabbitMQ's base64
/// form, SHA-256 unless `hashing_algorithm` says otherwise (RabbitMQ's default).
fn text_hash(text: &str, algorithm: Option<&str>) -> Result<PasswordHash, ApiError> {
    if text.is_empty() {
        return Ok(PasswordHash::None);
    }
    if text.starts_with("$argon2") {
        return Ok(PasswordHash::Argon2id(text.to_owned()));
    }
    let text = text.to_owned();
    match algorithm.unwrap_or("rabbit_password_hashing_sha256") {
        "rabbit_password_hashing_sha256" => Ok(PasswordHash::RabbitSha256(text)),
        "rabbit_password_hashing_sha512" => Ok(PasswordHash::RabbitSha512(text)),
        "rabbit_password_hashing_md5" => Ok(PasswordHash::RabbitMd5(text)),
        other => Err(ApiError::unprocessable(format!(
            "unknown hashing_algorithm {other:?}"
        ))),
    }
}

/// `PUT /api/users/{user}` (administrators): creates the user (201) or changes it (204).
pub(crate) async fn put(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if state.broker.auth().is_config_user(&name) {
        return Err(config_user(&name));
    }
    let user = name.clone();
    let created = blocking(move || {
        let hash = body.hash()?;
        let tags = body.tags();
        let max_connections = body.max_connections;
        let created = state.live.change(|definitions| {
            if definitions.user(&user).is_none() {
                let record = UserRecord {
                    name: user.clone(),
                    password_hash: hash.ok_or_else(|| EditError::NoPassword(user.clone()))?,
                    tags: tags.unwrap_or_default(),
                    max_connections: max_connections.flatten(),
                };
                edit::add_user(definitions, record)?;
                return Ok(Some(true));
            }
            if let Some(hash) = hash {
                edit::set_password(definitions, &user, hash)?;
            }
            if let Some(tags) = tags {
                edit::set_tags(definitions, &user, tags)?;
            }
            if let Some(limit) = max_connections {
                edit::set_user_max_connections(definitions, &user, limit)?;
            }
            Ok(Some(false))
        })?;
        Ok(created.unwrap_or(false))
    })
    .await?;
    tracing::info!(by = %caller.login.username, user = %name, created, "management API: user saved");
    Ok(super::saved(created))
}

/// `DELETE /api/users/{user}` (administrators): the user and its permissions; its
/// connections are closed (v5: DISCONNECT 0x87).
pub(crate) async fn delete(
    caller: Caller,
    Extract(state): Extract<State>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator()?;
    if state.broker.auth().is_config_user(&name) {
        return Err(config_user(&name));
    }
    let user = name.clone();
    blocking(move || {
        state
            .live
            .change(|definitions| edit::delete_user(definitions, &user).map(Some))?;
        Ok(())
    })
    .await?;
    tracing::info!(by = %caller.login.username, user = %name, "management API: user deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn config_user(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "user {name:?} is defined in the config file ([[auth.users]]); change it there"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> UserBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bodies_tell_absent_from_null_and_read_both_tag_forms() {
        let b = body(r#"{"tags": "administrator, monitoring", "max_connections": null}"#);
        assert_eq!(b.tags(), Some(vec![Tag::Administrator, Tag::Monitoring]));
        assert_eq!(b.max_connections, Some(None));
        let b = body(r#"{"tags": ["management", "management"]}"#);
        assert_eq!(b.tags(), Some(vec![Tag::Management]));
        assert_eq!(b.max_connections, None);
        assert!(serde_json::from_str::<UserBody>(r#"{"pasword": "x"}"#).is_err());
    }

    #[test]
    fn hashes_in_every_form() {
        assert_eq!(
            body(r#"{"password_hash": ""}"#).hash().unwrap(),
            Some(PasswordHash::None)
        );
        let rabbit =
            body(r#"{"password_hash": "abc", "hashing_algorithm": "rabbit_password_hashing_md5"}"#);
        assert_eq!(
            rabbit.hash().unwrap(),
            Some(PasswordHash::RabbitMd5("abc".into()))
        );
        let ours = body(r#"{"password_hash": {"algorithm": "rabbit_sha512", "hash": "x"}}"#);
        assert_eq!(
            ours.hash().unwrap(),
            Some(PasswordHash::RabbitSha512("x".into()))
        );
        assert!(body(r#"{"password": ""}"#).hash().is_err());
        assert!(
            body(r#"{"password": "a", "password_hash": ""}"#)
                .hash()
                .is_err()
        );
        assert!(
            body(r#"{"password_hash": "x", "hashing_algorithm": "rot13"}"#)
                .hash()
                .is_err()
        );
        assert_eq!(body("{}").hash().unwrap(), None);
    }
}
