//! API keys: `tnlp_<id>_<secret>`, where `id` (12 hex digits) names the key in lists, logs and
//! the audit log, and `secret` (48 hex digits, 192 random bits) is never stored: the database
//! keeps only an argon2id hash of the whole key, so a stolen database does not give keys away.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// What every key starts with (so secret scanners and people recognise one).
pub const PREFIX: &str = "tnlp_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 24;

/// A key split into its public id and its secret part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub full: &'a str,
}

/// A fresh key: `(id, full key)`.
pub fn generate() -> (String, String) {
    let id = random_hex(ID_BYTES);
    let secret = random_hex(SECRET_BYTES);
    let full = format!("{PREFIX}{id}_{secret}");
    (id, full)
}

/// The id and full text of `key` if it has the key format (anything else is not a key of
/// this host, whatever it is).
pub fn parse(key: &str) -> Option<Presented<'_>> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, bytes: usize| {
        s.len() == 2 * bytes && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    (hex(id, ID_BYTES) && hex(secret, SECRET_BYTES)).then_some(Presented { id, full: key })
}

/// The visible part of a key with this id (what lists and the audit log show).
pub fn visible_prefix(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// The argon2id hash (PHC string, salted) of `key`.
pub fn hash(key: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(key.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Whether `key` matches `phc` (argon2 compares the digests in constant time).
pub fn verify(key: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(key.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A fast digest of a verified key, kept in memory only, so that each request does not pay
/// for argon2 again.
pub fn fingerprint(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_verifies_against_its_hash_only() {
        let (id, key) = generate();
        let presented = parse(&key).expect("a generated key has the key format");
        assert_eq!(presented.id, id);
        let phc = hash(&key);
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(
            !phc.contains(&key[PREFIX.len() + 13..]),
            "the secret is not in the hash"
        );
        assert!(verify(&key, &phc));
        let (_, other) = generate();
        assert!(!verify(&other, &phc));
        assert!(!verify(&key, "not a phc string"));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let (_, key) = generate();
        for bad in [
            "",
            "tnlp_",
            &key[..key.len() - 1],
            &key.to_uppercase(),
            &key.replace("tnlp_", "sk-"),
            &format!("{key}0"),
            "tnlp_zzzzzzzzzzzz_000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
