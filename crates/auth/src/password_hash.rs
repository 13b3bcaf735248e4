//! Stored password hashes: ours (argon2id) and the ones RabbitMQ exports, verified exactly
//! as RabbitMQ computes them.
//!
//! RabbitMQ's scheme (`rabbit_password:hash/2`): a random 4-byte salt, then
//! `base64(salt ++ H(salt ++ utf8(password)))` with `H` = SHA-256
//! (`rabbit_password_hashing_sha256`, the default since 3.6), SHA-512
//! (`rabbit_password_hashing_sha512`) or MD5 (`rabbit_password_hashing_md5`, before 3.6).
//! Those hashes are fast by design, so a successful login with one should be re-hashed to
//! argon2id ([`PasswordHash::needs_rehash`]); the broker does that and stores the result.
//!
//! Nothing here logs or prints a hash: `Debug` shows the algorithm only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::password;

/// A user's stored password hash, tagged with its algorithm.
///
/// Serialized as `{"algorithm": "argon2id", "hash": "$argon2id$v=19$..."}`; the RabbitMQ
/// variants carry RabbitMQ's base64 text unchanged; `{"algorithm": "none"}` is a user
/// without a password (certificate or token logins only).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "algorithm", content = "hash", rename_all = "snake_case")]
pub enum PasswordHash {
    /// An argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    Argon2id(String),
    /// RabbitMQ `rabbit_password_hashing_sha256`: base64 of 4-byte salt + SHA-256(salt + password).
    RabbitSha256(String),
    /// RabbitMQ `rabbit_password_hashing_sha512`: base64 of 4-byte salt + SHA-512(salt + password).
    RabbitSha512(String),
    /// RabbitMQ `rabbit_password_hashing_md5`: base64 of 4-byte salt + MD5(salt + password).
    RabbitMd5(String),
    /// No password: password logins always fail.
    None,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash::{}(..)", self.algorithm())
    }
}

impl PasswordHash {
    /// Hashes `password` with argon2id and the recommended parameters (see
    /// [`crate::hash_password`]).
    pub fn argon2id(password: &str) -> PasswordHash {
        PasswordHash::Argon2id(password::hash_password(password))
    }

    /// The algorithm's name as serialized: `argon2id`, `rabbit_sha256`, `rabbit_sha512`,
    /// `rabbit_md5`, `none`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PasswordHash::Argon2id(_) => "argon2id",
            PasswordHash::RabbitSha256(_) => "rabbit_sha256",
            PasswordHash::RabbitSha512(_) => "rabbit_sha512",
            PasswordHash::RabbitMd5(_) => "rabbit_md5",
            PasswordHash::None => "none",
        }
    }

    /// Does `password` match? Costs one argon2 run for [`PasswordHash::Argon2id`] (tens of
    /// milliseconds), microseconds otherwise. An empty password never matches a RabbitMQ
    /// hash (RabbitMQ refuses blank passwords too); a malformed hash matches nothing.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Argon2id(phc) => password::verify(password, phc),
            PasswordHash::RabbitSha256(b64) => rabbit_verify::<Sha256>(b64, password),
            PasswordHash::RabbitSha512(b64) => rabbit_verify::<Sha512>(b64, password),
            PasswordHash::RabbitMd5(b64) => rabbit_verify::<Md5>(b64, password),
            PasswordHash::None => false,
        }
    }

    /// After a successful [`PasswordHash::verify`]: should the caller replace this hash with
    /// [`PasswordHash::argon2id`] of the same password? True for every RabbitMQ hash (fast
    /// hashes are cheap to brute-force), for argon2i/argon2d and for argon2id with weaker
    /// parameters than the recommended m=19456 KiB, t=2.
    pub fn needs_rehash(&self) -> bool {
        match self {
            PasswordHash::Argon2id(phc) => password::is_weaker_than_recommended(phc),
            PasswordHash::RabbitSha256(_)
            | PasswordHash::RabbitSha512(_)
            | PasswordHash::RabbitMd5(_) => true,
            PasswordHash::None => false,
        }
    }

    /// Checks that the hash can ever verify: a valid argon2 PHC string, or base64 of a salt
    /// and a digest of the algorithm's length. [`PasswordHash::None`] is fine.
    pub fn check(&self) -> Result<(), String> {
        match self {
            PasswordHash::Argon2id(phc) => password::check_phc(phc),
            PasswordHash::RabbitSha256(b64) => rabbit_check::<Sha256>(b64),
            PasswordHash::RabbitSha512(b64) => rabbit_check::<Sha512>(b64),
            PasswordHash::RabbitMd5(b64) => rabbit_check::<Md5>(b64),
            PasswordHash::None => Ok(()),
        }
    }

    /// Computes a RabbitMQ hash of `password` with `salt`, as `rabbit_password:hash/2` does
    /// with a random salt: `base64(salt ++ H(salt ++ password))`. For tests and for tools
    /// that write RabbitMQ definitions.
    pub fn rabbit_sha256(salt: [u8; 4], password: &str) -> PasswordHash {
        PasswordHash::RabbitSha256(rabbit_hash::<Sha256>(salt, password.as_bytes()))
    }

    /// SHA-512 variant of [`PasswordHash::rabbit_sha256`].
    pub fn rabbit_sha512(salt: [u8; 4], password: &str) -> PasswordHash {
        PasswordHash::RabbitSha512(rabbit_hash::<Sha512>(salt, password.as_bytes()))
    }

    /// MD5 variant of [`PasswordHash::rabbit_sha256`].
    pub fn rabbit_md5(salt: [u8; 4], password: &str) -> PasswordHash {
        PasswordHash::RabbitMd5(rabbit_hash::<Md5>(salt, password.as_bytes()))
    }
}

/// RabbitMQ's salt length (`rabbit_password:generate_salt/0`: 32 random bits).
const SALT_LEN: usize = 4;

fn rabbit_hash<D: Digest>(salt: [u8; SALT_LEN], password: &[u8]) -> String {
    let mut out = salt.to_vec();
    out.extend_from_slice(&salted_digest::<D>(&salt, password));
    BASE64.encode(out)
}

fn salted_digest<D: Digest>(salt: &[u8], password: &[u8]) -> Vec<u8> {
    let mut hasher = D::new();
    hasher.update(salt);
    hasher.update(password);
    hasher.finalize().to_vec()
}

fn rabbit_verify<D: Digest>(b64: &str, password: &[u8]) -> bool {
    if password.is_empty() {
        return false;
    }
    let Ok(decoded) = BASE64.decode(b64.trim()) else {
        return false;
    };
    let Some((salt, expected)) = decoded.split_at_checked(SALT_LEN) else {
        return false;
    };
    let actual = salted_digest::<D>(salt, password);
    // Lengths are public (they depend on the algorithm only); contents compare in
    // constant time.
    actual.len() == expected.len() && bool::from(actual.ct_eq(expected))
}

fn rabbit_check<D: Digest>(b64: &str) -> Result<(), String> {
    let decoded = BASE64
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let expected = SALT_LEN + <D as Digest>::output_size();
    if decoded.len() != expected {
        return Err(format!(
            "decodes to {} bytes, expected {expected} (4-byte salt and digest)",
            decoded.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from RabbitMQ's documentation ("Credentials and Passwords", computing a
    // password hash: salt 908DC60A, password "test12") and from the widely copied MD5
    // walkthrough (salt CAD5089B, password "simon"); both re-derived with Python's hashlib:
    //   s = bytes.fromhex('908DC60A')
    //   base64.b64encode(s + hashlib.sha256(s + b'test12').digest())
    const DOC_SHA256: &str = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR";
    const DOC_MD5: &str = "ytUIm8s3AnKsXQjptplKFytfVxI=";
    // base64.b64encode(s + hashlib.sha512(s + b'test12').digest()) with s = 908DC60A.
    const SHA512_TEST12: &str = "kI3GChuNuIYf8lRbCCxZjgjKwsY19ns6+uFO0zcXRBGA/XGJPYD8OWMy7EB8TaOmAzjP2azv84GbINYwX2cDWb4DHnc=";

    #[test]
    fn rabbit_documentation_vectors() {
        assert_eq!(
            PasswordHash::rabbit_sha256([0x90, 0x8D, 0xC6, 0x0A], "test12"),
            PasswordHash::RabbitSha256(DOC_SHA256.to_owned())
        );
        assert_eq!(
            PasswordHash::rabbit_md5([0xCA, 0xD5, 0x08, 0x9B], "simon"),
            PasswordHash::RabbitMd5(DOC_MD5.to_owned())
        );
        assert_eq!(
            PasswordHash::rabbit_sha512([0x90, 0x8D, 0xC6, 0x0A], "test12"),
            PasswordHash::RabbitSha512(SHA512_TEST12.to_owned())
        );
    }

    #[test]
    fn rabbit_hashes_verify() {
        let cases = [
            PasswordHash::RabbitSha256(DOC_SHA256.to_owned()),
            PasswordHash::RabbitSha512(SHA512_TEST12.to_owned()),
        ];
        for hash in cases {
            assert_eq!(hash.check(), Ok(()));
            assert!(hash.verify(b"test12"), "{hash:?}");
            assert!(!hash.verify(b"test13"), "{hash:?}");
            assert!(!hash.verify(b""), "{hash:?}");
            assert!(hash.needs_rehash());
        }
        let md5 = PasswordHash::RabbitMd5(DOC_MD5.to_owned());
        assert!(md5.verify(b"simon"));
        assert!(!md5.verify(b"Simon"));
        // The algorithm matters: a SHA-256 hash read as SHA-512 verifies nothing.
        assert!(!PasswordHash::RabbitSha512(DOC_SHA256.to_owned()).verify(b"test12"));
        assert!(
            PasswordHash::RabbitSha512(DOC_SHA256.to_owned())
                .check()
                .is_err()
        );
    }

    #[test]
    fn malformed_hashes_verify_nothing() {
        for bad in ["", "!!!", "kI3G", "AAAA", "kI3GCqW5"] {
            let hash = PasswordHash::RabbitSha256(bad.to_owned());
            assert!(!hash.verify(b"test12"), "{bad:?}");
            assert!(!hash.verify(b""), "{bad:?}");
            assert!(hash.check().is_err(), "{bad:?}");
        }
        assert!(!PasswordHash::None.verify(b""));
        assert!(!PasswordHash::None.verify(b"x"));
        assert!(!PasswordHash::Argon2id("nonsense".into()).verify(b"x"));
        assert!(PasswordHash::Argon2id("nonsense".into()).check().is_err());
    }

    #[test]
    fn argon2id_round_trip_and_rehash_rule() {
        let hash = PasswordHash::argon2id("pw");
        assert!(hash.verify(b"pw"));
        assert!(!hash.needs_rehash());
        // The cheap test parameters (m=8, t=1) are weaker than recommended.
        let weak = PasswordHash::Argon2id("$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2VjcmV0LXRlc3Qtc2FsdA$IIIuuumCOhX8LRy0FCvFR5bVXgARKxXPg0rDnQyqDYI".into());
        assert!(weak.verify(b"alice-secret"));
        assert!(weak.needs_rehash());
        assert!(!PasswordHash::None.needs_rehash());
    }

    #[test]
    fn serde_form_and_debug() {
        let hash = PasswordHash::RabbitSha256(DOC_SHA256.to_owned());
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"algorithm":"rabbit_sha256","hash":"{DOC_SHA256}"}}"#)
        );
        assert_eq!(serde_json::from_str::<PasswordHash>(&json).unwrap(), hash);
        assert_eq!(
            serde_json::to_string(&PasswordHash::None).unwrap(),
            r#"{"algorithm":"none"}"#
        );
        let debug = format!("{hash:?}");
        assert!(!debug.contains(DOC_SHA256), "{debug}");
        assert!(debug.contains("rabbit_sha256"), "{debug}");
    }
}
