//! Sealing of stored credentials: XChaCha20-Poly1305 with a random nonce per record and
//! a key id beside each record, so keys can rotate (old keys open, the current key seals).

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const NONCE_LEN: usize = 24;

/// The master keys: the current one seals, every one opens.
pub struct Keyring {
    current: String,
    ciphers: HashMap<String, XChaCha20Poly1305>,
}

impl Keyring {
    /// `current` and `previous` are base64 encodings of 32-byte keys.
    pub fn new(current: &Secret, previous: &[Secret]) -> Result<Keyring> {
        let mut ciphers = HashMap::new();
        let mut current_id = String::new();
        for (index, key) in std::iter::once(current).chain(previous).enumerate() {
            let bytes = BASE64.decode(key.expose().trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "master key",
                    format!("key #{index} must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"),
                )
            })?;
            let id = key_id(&bytes);
            if index == 0 {
                current_id = id.clone();
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| Error::new(ErrorKind::InvalidInput, "master key", "unusable key"))?;
            ciphers.insert(id, cipher);
        }
        Ok(Keyring {
            current: current_id,
            ciphers,
        })
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> Secret {
        Secret::new(BASE64.encode(XChaCha20Poly1305::generate_key(&mut OsRng)))
    }

    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `plaintext`; returns (key id, base64 of nonce + ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<(String, String)> {
        let cipher = &self.ciphers[&self.current];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher.encrypt(&nonce, plaintext).map_err(|_| {
            Error::new(
                ErrorKind::Store,
                "sealing a credential",
                "encryption failed",
            )
        })?;
        let mut record = nonce.to_vec();
        record.extend(sealed);
        Ok((self.current.clone(), BASE64.encode(record)))
    }

    /// Decrypts a record sealed with key `key_id`.
    pub fn open(&self, key_id: &str, sealed: &str) -> Result<Vec<u8>> {
        let failed = |why: &str| {
            Error::new(
                ErrorKind::Store,
                "opening a sealed credential",
                why.to_string(),
            )
        };
        let cipher = self.ciphers.get(key_id).ok_or_else(|| {
            failed(&format!(
                "it was sealed with key {key_id}, which is not among the configured keys"
            ))
        })?;
        let record = BASE64
            .decode(sealed)
            .map_err(|_| failed("the record is not base64"))?;
        if record.len() < NONCE_LEN {
            return Err(failed("the record is truncated"));
        }
        let (nonce, ciphertext) = record.split_at(NONCE_LEN);
        cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| failed("authentication failed: wrong key or tampered record"))
    }
}

/// The first 8 bytes of the key's SHA-256, in hex: names a key without revealing it.
fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

#[cfg(test)]
mod tests {
    use super::Keyring;

    #[test]
    fn sealed_records_open_with_current_and_previous_keys_only() {
        let old = Keyring::generate_key();
        let new = Keyring::generate_key();
        let before = Keyring::new(&old, &[]).unwrap();
        let (old_id, sealed) = before.seal(b"hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));

        let rotated = Keyring::new(&new, std::slice::from_ref(&old)).unwrap();
        assert_eq!(rotated.open(&old_id, &sealed).unwrap(), b"hunter2");
        assert_ne!(rotated.current_key_id(), old_id);

        let forgotten = Keyring::new(&new, &[]).unwrap();
        let err = forgotten.open(&old_id, &sealed).unwrap_err();
        assert!(err.message.contains(&old_id), "{err}");

        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let err = before
            .open(&old_id, std::str::from_utf8(&tampered).unwrap())
            .unwrap_err();
        assert!(err.message.contains("tampered"), "{err}");
    }

    #[test]
    fn bad_keys_are_refused_without_echo() {
        let err = Keyring::new(&"c2hvcnQ=".into(), &[]).err().unwrap();
        assert!(err.message.contains("32 random bytes"), "{err}");
        assert!(!err.to_string().contains("c2hvcnQ="));
    }
}
