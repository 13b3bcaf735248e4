//! argon2 hashing and verification, and the cache of verified passwords.
//!
//! Nothing here stores a plaintext password: a successful verification is remembered as
//! SHA-256 over a per-authenticator random key and the password, so a memory dump holds
//! neither the password nor a digest that a precomputed table could reverse.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The built-in `guest` user's hash of the password `guest`, with the recommended parameters.
///
/// A constant rather than a hash computed at startup: the password is public anyway, and
/// starting the broker (or every test that builds an authenticator) should not cost an argon2
/// run.
pub(crate) const GUEST_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Z3Vlc3QtZmVycnltcS1zYWx0$pJrwnx9OxZKpG64q1gNqpmQ9j6ixt+wviy6q6YVAj4g";

/// A hash of no known password, verified against when the username is unknown so that a
/// client cannot tell unknown users from wrong passwords by the response time.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXktZmVycnltcS1zYWx0$88HqdnGk5MV4WLqh5Vot7LNtW2RnZdbS+pVRFH9fowE";

/// Hashes `password` into an argon2id PHC string with the argon2 crate's recommended
/// parameters (m=19456 KiB, t=2, p=1) and a random 16-byte salt.
///
/// # Panics
///
/// Only if the operating system's random source fails or the password is longer than
/// 4 GiB; argon2 has no other failure with these fixed parameters.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .expect("argon2 with default parameters only fails on passwords over 4 GiB")
}

/// Checks that `phc` is an argon2 PHC string that [`verify`] can use: known variant, valid
/// parameters, and both salt and hash present.
pub(crate) fn check_phc(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| format!("algorithm {:?} is not argon2", hash.algorithm.as_str()))?;
    Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if hash.salt.is_none() {
        return Err("the salt is missing".to_owned());
    }
    if hash.hash.is_none() {
        return Err("the hash is missing".to_owned());
    }
    Ok(())
}

/// True when `phc` is not argon2id, or uses less memory or fewer passes than the
/// parameters [`hash_password`] uses; also true for a string that does not parse.
pub(crate) fn is_weaker_than_recommended(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    if Algorithm::try_from(hash.algorithm) != Ok(Algorithm::Argon2id) {
        return true;
    }
    let recommended = Params::default();
    match Params::try_from(&hash) {
        Ok(params) => {
            params.m_cost() < recommended.m_cost() || params.t_cost() < recommended.t_cost()
        }
        Err(_) => true,
    }
}

/// Runs argon2 over `password` with the parameters and salt of `phc`. A string that does
/// not parse never verifies (configs are validated before they get here).
pub(crate) fn verify(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password, &hash).is_ok(),
        Err(_) => false,
    }
}

/// The secret that keys the digests of verified passwords; one per authenticator.
pub(crate) struct DigestKey([u8; 32]);

impl DigestKey {
    pub(crate) fn random() -> Result<DigestKey, String> {
        let mut key = [0u8; 32];
        OsRng.try_fill_bytes(&mut key).map_err(|e| e.to_string())?;
        Ok(DigestKey(key))
    }

    /// The key itself, for digests of other things than passwords (the hook cache's keys).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256(key || password). A plain prefix-keyed hash is enough: the digest never
    /// leaves the process, so length extension (the reason HMAC exists) gives nothing.
    pub(crate) fn digest(&self, password: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(password);
        hasher.finalize().into()
    }
}

/// The remembered successful verification of one user.
///
/// One slot is enough: a user has a single hash, and only one password verifies against it.
/// `OnceLock` makes the hit path lock-free, which matters when thousands of devices sharing
/// one credential reconnect at once.
#[derive(Default)]
pub(crate) struct VerifiedCache {
    digest: OnceLock<[u8; 32]>,
}

impl VerifiedCache {
    /// True when `digest` is the remembered one (constant-time comparison).
    pub(crate) fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digest
            .get()
            .is_some_and(|known| bool::from(known.ct_eq(digest)))
    }

    /// Remembers a digest whose password argon2 just verified.
    pub(crate) fn insert(&self, digest: [u8; 32]) {
        // A concurrent insert can only be the same digest (see the type's docs), so losing
        // the race is harmless.
        let _ = self.digest.set(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_password_round_trips_with_recommended_params() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(check_phc(&phc), Ok(()));
        assert!(verify(b"correct horse", &phc));
        assert!(!verify(b"correct horsf", &phc));
        // A fresh salt each time.
        assert_ne!(phc, hash_password("correct horse"));
    }

    #[test]
    fn builtin_hashes_are_valid() {
        assert_eq!(check_phc(GUEST_HASH), Ok(()));
        assert_eq!(check_phc(DUMMY_HASH), Ok(()));
        assert!(verify(b"guest", GUEST_HASH));
        assert!(!verify(b"guest", DUMMY_HASH));
    }

    #[test]
    fn digests_depend_on_the_key_and_the_password() {
        let (a, b) = (DigestKey::random().unwrap(), DigestKey::random().unwrap());
        assert_eq!(a.digest(b"pw"), a.digest(b"pw"));
        assert_ne!(a.digest(b"pw"), a.digest(b"pW"));
        assert_ne!(a.digest(b"pw"), b.digest(b"pw"));
    }

    #[test]
    fn cache_remembers_one_digest() {
        let key = DigestKey::random().unwrap();
        let cache = VerifiedCache::default();
        assert!(!cache.contains(&key.digest(b"pw")));
        cache.insert(key.digest(b"pw"));
        assert!(cache.contains(&key.digest(b"pw")));
        assert!(!cache.contains(&key.digest(b"other")));
    }
}
