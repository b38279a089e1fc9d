//! Keys and the keyring. The user-facing documentation (keys file, environment
//! form, rotation) is `key_docs.md`, rendered as the public `keys` module.

use std::fmt;

use base64_simd::URL_SAFE_NO_PAD;
use hmac::digest::core_api::{Buffer, FixedOutputCore as _, UpdateCore as _};
use hmac::{Hmac, HmacCore, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::limits::{
    GENERATED_SECRET_LEN, MAX_KEY_ID_LEN, MAX_SECRET_LEN, MIN_SECRET_LEN, TAG_LEN, is_valid_key_id,
};

/// Label of the link-key derivation: `link_key = HMAC-SHA256(secret, label)`.
pub(crate) const LINK_KEY_LABEL: &[u8] = b"mediagate link key v1";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Why a key or keyring could not be made. No message quotes a value
/// (an id, a secret, a line) read from a keys file or the environment: a
/// secret pasted in the wrong place must not reach a log. Errors in a keys
/// file or `MEDIAGATE_KEYS` say where they are with [`KeyError::At`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key id is empty, too long, or uses characters other than
    /// `A-Z a-z 0-9 . _ -`.
    #[error("key id must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -")]
    InvalidId,
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("key secret is {len} bytes; at least {MIN_SECRET_LEN} are required")]
    SecretTooShort {
        /// Length of the rejected secret, in bytes.
        len: usize,
    },
    /// The secret is longer than [`MAX_SECRET_LEN`] bytes.
    #[error("key secret is longer than {MAX_SECRET_LEN} bytes")]
    SecretTooLong,
    /// The secret is not base64url without padding.
    #[error("key secret is not base64url without padding")]
    SecretEncoding,
    /// Two keys share an id.
    #[error("key id is listed twice")]
    DuplicateId,
    /// The active key id is not among the keys.
    #[error("the active key is not listed among the keys")]
    ActiveNotListed,
    /// The keyring has no key.
    #[error("no key given")]
    Empty,
    /// The keys file is not valid TOML of the documented shape; the
    /// message names the line and the kind of problem, never the text.
    #[error("{0}")]
    File(String),
    /// The environment value is not `id:secret[,id:secret...]`.
    #[error("keys value must be id:secret[,id:secret...]")]
    EnvFormat,
    /// No key has the id asked for.
    #[error("no key with that id is listed")]
    NotListed,
    /// The active key was asked to be retired.
    #[error("the active key cannot be retired: activate another key first")]
    RetireActive,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// One of the errors above, at a place in a keys file or value.
    #[error("{place}: {source}")]
    At {
        /// Where.
        place: KeyPlace,
        /// What.
        source: Box<KeyError>,
    },
}

impl KeyError {
    /// The error itself, without the place it was found at.
    pub fn kind(&self) -> &KeyError {
        match self {
            KeyError::At { source, .. } => source.kind(),
            other => other,
        }
    }

    /// A short, stable name for the error (`secret_too_short`,
    /// `active_not_listed`, ...), the place left out.
    pub fn code(&self) -> &'static str {
        match self.kind() {
            KeyError::InvalidId => "invalid_key_id",
            KeyError::SecretTooShort { .. } => "secret_too_short",
            KeyError::SecretTooLong => "secret_too_long",
            KeyError::SecretEncoding => "secret_encoding",
            KeyError::DuplicateId => "duplicate_key_id",
            KeyError::ActiveNotListed => "active_not_listed",
            KeyError::Empty => "no_keys",
            KeyError::File(_) => "bad_keys_file",
            KeyError::EnvFormat => "bad_keys_value",
            KeyError::NotListed => "key_not_listed",
            KeyError::RetireActive => "retire_active",
            KeyError::Random => "random_failed",
            KeyError::At { .. } => "bad_keys_file",
        }
    }

    fn at(self, place: KeyPlace) -> KeyError {
        KeyError::At {
            place,
            source: Box::new(self),
        }
    }
}

/// Where in a keys file or `id:secret,...` value an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyPlace {
    /// A line of a keys file (from 1), and the field on it.
    Line {
        /// The line number.
        line: usize,
        /// The field: `active`, `id` or `secret`.
        field: &'static str,
    },
    /// The n-th `id:secret` entry of a value (from 1).
    Entry(usize),
}

impl std::fmt::Display for KeyPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPlace::Line { line, field } => write!(f, "line {line}, {field}"),
            KeyPlace::Entry(n) => write!(f, "entry {n}"),
        }
    }
}

/// A validated key id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyId(String);

impl KeyId {
    pub(crate) fn new(id: &str) -> Result<Self, KeyError> {
        if is_valid_key_id(id.as_bytes()) {
            Ok(KeyId(id.to_owned()))
        } else {
            Err(KeyError::InvalidId)
        }
    }
}

/// One signing key: an id and a secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Key {
    id: KeyId,
    secret: Zeroizing<Vec<u8>>,
    /// HMAC state keyed with the derived link key; cloned per operation.
    /// The core state, without the block buffer of the `Mac` wrapper:
    /// cloning and finalizing it copies half as much (see `link_tag`).
    link_mac: HmacCore<Sha256>,
}

impl Key {
    /// Makes a key from an id and a raw secret of at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, KeyError> {
        let id = KeyId::new(id)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(KeyError::SecretTooLong);
        }
        let link_key = derive_link_key(secret);
        let link_mac = <HmacCore<Sha256> as hmac::digest::KeyInit>::new_from_slice(&link_key[..])
            .expect("HMAC takes keys of any length");
        Ok(Key {
            id,
            secret: Zeroizing::new(secret.to_vec()),
            link_mac,
        })
    }

    /// Makes a key from an id and a base64url (no padding) secret, the
    /// spelling used in keys files and the environment.
    pub fn from_base64(id: &str, secret_b64: &str) -> Result<Self, KeyError> {
        KeyId::new(id)?;
        let secret = URL_SAFE_NO_PAD
            .decode_to_vec(secret_b64.trim().as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| KeyError::SecretEncoding)?;
        Key::new(id, &secret)
    }

    /// Makes a new key with a [`GENERATED_SECRET_LEN`]-byte secret from the
    /// operating system's CSPRNG.
    pub fn generate(id: &str) -> Result<Self, KeyError> {
        let mut secret = Zeroizing::new([0u8; GENERATED_SECRET_LEN]);
        getrandom::fill(&mut secret[..]).map_err(|_| KeyError::Random)?;
        Key::new(id, &secret[..])
    }

    /// The key id, carried in every token this key signs.
    pub fn id(&self) -> &str {
        &self.id.0
    }

    /// The secret in base64url without padding, as written to keys files.
    ///
    /// This exposes the secret: write it only to a file with mode 0600 or to
    /// a secret store, never to logs or command lines.
    pub fn expose_secret_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode_to_string(&self.secret[..]))
    }

    /// The link MAC of `payload`: HMAC-SHA256 under the derived link key.
    #[inline]
    pub(crate) fn link_tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        // The `Mac` wrapper's steps, on the hmac crate's core state: the
        // payload goes through a block buffer on the stack, and the tag is
        // written out once, sparing the copies of the wrapper's 64-byte
        // buffer that `Hmac::clone`, `update`, `finalize` make with every
        // clone and move (BENCHMARKS.md, "Design measurements"); same
        // bytes, checked against `Hmac` in the tests.
        let mut core = self.link_mac.clone();
        let mut buffer = Buffer::<HmacCore<Sha256>>::default();
        buffer.digest_blocks(payload, |blocks| core.update_blocks(blocks));
        let mut tag = Default::default();
        core.finalize_fixed_core(&mut buffer, &mut tag);
        tag.into()
    }

    /// Whether `tag` is the link MAC of `payload`, compared in constant time.
    #[inline]
    pub(crate) fn link_tag_matches(&self, payload: &[u8], tag: &[u8; TAG_LEN]) -> bool {
        tags_equal(&self.link_tag(payload), tag)
    }
}

/// Constant-time equality of two tags: the XORs of their four 64-bit words
/// ORed together without a branch, then `subtle`'s `ConstantTimeEq` against
/// zero (one optimization barrier) before the single branch. The time taken
/// does not depend on where, or whether, the tags differ.
///
/// This is `Mac::verify_slice`'s guarantee from the same crate; that method
/// compares byte by byte, behind an optimization barrier per byte, which
/// costs a sizeable part of the HMAC itself (BENCHMARKS.md, "Design
/// measurements"); one barrier in all costs almost nothing.
fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    let diff = a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .fold(0, |diff, (a, b)| diff | (word(a) ^ word(b)));
    diff.ct_eq(&0).into()
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id.0)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `link_key = HMAC-SHA256(secret, "mediagate link key v1")`: the MAC key
/// for links, separated from any other use of the same secret.
fn derive_link_key(secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(LINK_KEY_LABEL);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The keys a signer or verifier knows: one active key that signs new links,
/// and verify-only keys from earlier rotations.
#[derive(Clone, Debug)]
pub struct Keyring {
    /// `keys[0]` is the active key.
    keys: Vec<Key>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    active: toml::Spanned<String>,
    keys: Vec<KeyEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: toml::Spanned<String>,
    secret: toml::Spanned<String>,
}

impl Keyring {
    /// A keyring whose only key is `active`.
    pub fn new(active: Key) -> Self {
        Keyring { keys: vec![active] }
    }

    /// Adds a verify-only key (for example the previous active key).
    pub fn with_verify_key(mut self, key: Key) -> Result<Self, KeyError> {
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(KeyError::DuplicateId);
        }
        self.keys.push(key);
        Ok(self)
    }

    /// Reads the TOML keys file format described in [`keys`](crate::keys).
    /// An error names the line and field it is at ([`KeyError::At`]).
    pub fn from_toml(text: &str) -> Result<Self, KeyError> {
        let file: KeysFile =
            toml::from_str(text).map_err(|e| KeyError::File(toml_message(text, &e)))?;
        let place = |field, at: &toml::Spanned<String>| KeyPlace::Line {
            line: line_of(text, at.span().start),
            field,
        };
        let mut active = None;
        let mut rest = Vec::new();
        for (i, entry) in file.keys.iter().enumerate() {
            if file.keys[..i]
                .iter()
                .any(|e| e.id.get_ref() == entry.id.get_ref())
            {
                return Err(KeyError::DuplicateId.at(place("id", &entry.id)));
            }
            let key = match Key::from_base64(entry.id.get_ref(), entry.secret.get_ref()) {
                Ok(key) => key,
                Err(e @ KeyError::InvalidId) => return Err(e.at(place("id", &entry.id))),
                Err(e) => return Err(e.at(place("secret", &entry.secret))),
            };
            if entry.id.get_ref() == file.active.get_ref() {
                active = Some(key);
            } else {
                rest.push(key);
            }
        }
        let Some(active) = active else {
            return Err(if file.keys.is_empty() {
                KeyError::Empty
            } else {
                KeyError::ActiveNotListed.at(place("active", &file.active))
            });
        };
        rest.into_iter()
            .try_fold(Keyring::new(active), Keyring::with_verify_key)
    }

    /// Reads the compact `id:secret[,id:secret...]` form; the first key is
    /// the active one. An error names the entry it is in ([`KeyError::At`]).
    pub fn from_env_value(value: &str) -> Result<Self, KeyError> {
        let mut keys = value.split(',').enumerate().map(|(i, pair)| {
            let at = KeyPlace::Entry(i + 1);
            let (id, secret) = pair
                .trim()
                .split_once(':')
                .ok_or(KeyError::EnvFormat.at(at))?;
            Key::from_base64(id, secret).map_err(|e| e.at(at))
        });
        let active = keys.next().ok_or(KeyError::Empty)??;
        let mut ring = Keyring::new(active);
        for (i, key) in keys.enumerate() {
            ring = ring
                .with_verify_key(key?)
                .map_err(|e| e.at(KeyPlace::Entry(i + 2)))?;
        }
        Ok(ring)
    }

    /// Writes the keyring in the keys file format. The result holds secrets.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = String::from(
            "# mediagate keys. Keep this file secret (mode 0600) and backed up.\n\
             # `active` signs new links; every listed key verifies.\n",
        );
        out.push_str(&format!("active = \"{}\"\n", self.active().id()));
        for key in &self.keys {
            out.push_str(&format!(
                "\n[[keys]]\nid = \"{}\"\nsecret = \"{}\"\n",
                key.id(),
                &*key.expose_secret_base64()
            ));
        }
        Zeroizing::new(out)
    }

    /// The key that signs new links.
    #[inline]
    pub fn active(&self) -> &Key {
        &self.keys[0]
    }

    /// Makes `id` the active key, keeping the previous one for verification.
    pub fn set_active(&mut self, id: &str) -> Result<(), KeyError> {
        let pos = self
            .keys
            .iter()
            .position(|k| k.id() == id)
            .ok_or(KeyError::ActiveNotListed)?;
        self.keys.swap(0, pos);
        Ok(())
    }

    /// Removes the verify-only key `id`: links it signed are refused from
    /// then on. The active key cannot be retired
    /// ([`KeyError::RetireActive`]); make another one active first.
    pub fn retire(&mut self, id: &str) -> Result<Key, KeyError> {
        match self.keys.iter().position(|k| k.id() == id) {
            Some(0) => Err(KeyError::RetireActive),
            Some(pos) => Ok(self.keys.remove(pos)),
            None => Err(KeyError::NotListed),
        }
    }

    /// The key with this id, active or verify-only.
    #[inline]
    pub fn get(&self, id: &[u8]) -> Option<&Key> {
        self.keys.iter().find(|k| k.id.0.as_bytes() == id)
    }

    /// Every key, the active one first.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }
}

/// The line (from 1) that byte `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    memchr::memchr_iter(b'\n', before).count() + 1
}

/// What is wrong with a keys file that does not parse, without any of its
/// text: serde's and toml's messages quote the values they refuse (a
/// secret pasted as `keys = "id:SECRET"` would be printed whole), so only
/// the kind of problem is kept, and the line it is on.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message();
    let kind = if let Some(field) = message.strip_prefix("missing field ") {
        // A field of the documented shape, named by serde, not the file.
        format!("missing field {}", field.lines().next().unwrap_or_default())
    } else if message.starts_with("unknown field") {
        "an unknown field (a keys file has `active` and [[keys]] tables of `id` and `secret`)"
            .to_owned()
    } else if message.starts_with("invalid type") || message.starts_with("invalid length") {
        // The expectation comes from the documented shape.
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, e)| format!(" (expected {})", e.lines().next().unwrap_or_default()))
            .unwrap_or_default();
        format!("a value of the wrong type{expected}")
    } else if message.starts_with("duplicate key") {
        "a key set twice".to_owned()
    } else {
        "not valid TOML".to_owned()
    };
    let hint = if message.starts_with("invalid type") && message.ends_with("expected a sequence") {
        "; `keys` is a list of [[keys]] tables (the id:secret form is for MEDIAGATE_KEYS)"
    } else {
        ""
    };
    match e.span() {
        Some(span) => format!("keys file line {}: {kind}{hint}", line_of(text, span.start)),
        None => format!("keys file: {kind}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S32: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn refuses_short_secrets_and_bad_ids() {
        assert_eq!(
            Key::new("k", &S32[..31]).err(),
            Some(KeyError::SecretTooShort { len: 31 })
        );
        let long = vec![7u8; MAX_SECRET_LEN + 1];
        assert_eq!(Key::new("k", &long).err(), Some(KeyError::SecretTooLong));
        for id in ["", "a b", "k/1", "é", &"x".repeat(33)] {
            assert_eq!(Key::new(id, S32).err(), Some(KeyError::InvalidId), "{id:?}");
        }
        assert!(Key::new("k-1_a.b", S32).is_ok());
    }

    #[test]
    fn codes_name_the_error_without_its_place() {
        let at = Keyring::from_toml("active = \"a\"\n[[keys]]\nid = \"b\"\nsecret = \"x\"\n")
            .expect_err("a bad secret");
        assert!(matches!(at, KeyError::At { .. }), "{at:?}");
        assert_eq!(at.code(), at.kind().code());
        assert_eq!(
            KeyError::SecretTooShort { len: 1 }.code(),
            "secret_too_short"
        );
        assert_eq!(KeyError::ActiveNotListed.code(), "active_not_listed");
    }

    #[test]
    fn tags_equal_only_when_every_bit_is() {
        let a: [u8; TAG_LEN] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        assert!(tags_equal(&a, &a));
        for byte in 0..TAG_LEN {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!tags_equal(&a, &b), "byte {byte} bit {bit}");
                assert!(!tags_equal(&b, &a), "byte {byte} bit {bit}");
            }
        }
        assert!(!tags_equal(&a, &[0; TAG_LEN]));
    }

    #[test]
    fn link_tag_is_hmac_sha256_under_the_link_key_at_every_length() {
        // The core-state path must give the `Mac` wrapper's bytes on either
        // side of every block boundary (55/56 and 63/64/65 bytes are where
        // the padding spills into another block).
        let secret = [0x5au8; 40];
        let key = Key::new("k1", &secret).unwrap();
        let link_key = derive_link_key(&secret);
        let message: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for len in 0..message.len() {
            let mut mac = HmacSha256::new_from_slice(&link_key[..]).unwrap();
            mac.update(&message[..len]);
            let expected: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(key.link_tag(&message[..len]), expected, "length {len}");
        }
    }

    #[test]
    fn link_tag_matches_its_own_tag_only() {
        let key = Key::new("k1", &[7u8; 32]).unwrap();
        let tag = key.link_tag(b"payload");
        assert!(key.link_tag_matches(b"payload", &tag));
        assert!(!key.link_tag_matches(b"payloae", &tag));
        let other = Key::new("k1", &[8u8; 32]).unwrap();
        assert!(!other.link_tag_matches(b"payload", &tag));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let key = Key::new("k1", S32).unwrap();
        let b64 = key.expose_secret_base64();
        let ring = Keyring::new(key.clone());
        for text in [format!("{key:?}"), format!("{ring:?}")] {
            assert!(text.contains("redacted"));
            assert!(!text.contains("0123456789"));
            assert!(!text.contains(b64.as_str()));
        }
    }

    #[test]
    fn toml_round_trip_and_rotation() {
        let ring = Keyring::new(Key::generate("new").unwrap())
            .with_verify_key(Key::generate("old").unwrap())
            .unwrap();
        let text = ring.to_toml();
        let back = Keyring::from_toml(&text).unwrap();
        assert_eq!(back.active().id(), "new");
        assert!(back.get(b"old").is_some());
        assert!(back.get(b"nope").is_none());
        assert_eq!(
            back.active().expose_secret_base64(),
            ring.active().expose_secret_base64()
        );
    }

    #[test]
    fn keys_file_errors_name_the_line_and_field() {
        let text = "active = \"a\"\n[[keys]]\nid = \"a\"\nsecret = \"c2hvcnQ\"\n";
        let err = Keyring::from_toml(text).unwrap_err();
        assert_eq!(err.kind(), &KeyError::SecretTooShort { len: 5 });
        assert_eq!(
            err.to_string(),
            "line 4, secret: key secret is 5 bytes; at least 32 are required"
        );
        assert!(matches!(
            Keyring::from_toml("active = \"x\"\nkeys = []"),
            Err(KeyError::Empty)
        ));
        let b64 = URL_SAFE_NO_PAD.encode_to_string(S32);
        let dup = format!(
            "active = \"a\"\n[[keys]]\nid = \"a\"\nsecret = \"{b64}\"\n[[keys]]\nid = \"a\"\nsecret = \"{b64}\"\n"
        );
        let err = Keyring::from_toml(&dup).unwrap_err();
        assert_eq!(err.kind(), &KeyError::DuplicateId);
        assert!(err.to_string().starts_with("line 6, id:"), "{err}");
    }

    /// Keys files that are wrong in every way a hand edit makes them, each
    /// holding the sentinel in the place it went wrong.
    fn malformed_keys_files(sentinel: &str) -> Vec<String> {
        let good = URL_SAFE_NO_PAD.encode_to_string(S32);
        vec![
            // The MEDIAGATE_KEYS form pasted into TOML.
            format!("active = \"k\"\nkeys = \"k:{sentinel}\"\n"),
            format!("keys = \"{sentinel}\"\n"),
            // An active key that is not listed; a secret as the active id.
            format!("active = \"{sentinel}\"\n[[keys]]\nid = \"k\"\nsecret = \"{good}\"\n"),
            // Bad secrets: not base64url, too short, too long.
            format!("active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{sentinel}@@\"\n"),
            format!("active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{sentinel}\"\n"),
            format!(
                "active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{}\"\n",
                sentinel.repeat(20)
            ),
            // A secret in the id; an unknown field; a secret as a field name.
            format!("active = \"k\"\n[[keys]]\nid = \"{sentinel}/\"\nsecret = \"{good}\"\n"),
            format!(
                "active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{good}\"\nnote = \"{sentinel}\"\n"
            ),
            format!("active = \"k\"\n{sentinel} = 1\n"),
            // Wrong types, broken syntax.
            format!("active = [\"{sentinel}\"]\n"),
            format!("active = {sentinel}\n"),
            format!("active = \"{sentinel}"),
            format!(
                "active = \"k\"\n[[keys]]\nid = \"k\"\nsecret = \"{good}\"\nsecret = \"{sentinel}\"\n"
            ),
        ]
    }

    #[test]
    fn keys_file_errors_never_quote_the_file() {
        const SENTINEL: &str = "SENTINELxSECRETxVALUE";
        for text in malformed_keys_files(SENTINEL) {
            let err = Keyring::from_toml(&text).expect_err(&text).to_string();
            assert!(!err.contains("SENTINEL"), "{text:?} -> {err}");
            assert!(err.contains("line") || err.contains("no key"), "{err}");
        }
        let err = Keyring::from_toml("active = \"k\"\nkeys = \"k:x\"\n").unwrap_err();
        assert!(err.to_string().contains("[[keys]]"), "{err}");
        for value in [
            SENTINEL.to_string(),
            format!("k:{SENTINEL}@"),
            format!("{SENTINEL}/:abc"),
            format!("k:{}", "A".repeat(60)).replace('A', SENTINEL),
        ] {
            let err = Keyring::from_env_value(&value).unwrap_err().to_string();
            assert!(!err.contains("SENTINEL"), "{value:?} -> {err}");
        }
    }

    #[test]
    fn env_value_form() {
        let b64 = URL_SAFE_NO_PAD.encode_to_string(S32);
        let ring = Keyring::from_env_value(&format!("a:{b64}, b:{b64}")).unwrap();
        assert_eq!(ring.active().id(), "a");
        assert!(ring.get(b"b").is_some());
        let err = Keyring::from_env_value("nocolon").unwrap_err();
        assert_eq!(err.kind(), &KeyError::EnvFormat);
        let err = Keyring::from_env_value(&format!("a:{b64},b:{b64}=")).unwrap_err();
        assert_eq!(err.kind(), &KeyError::SecretEncoding);
        assert_eq!(
            err.to_string(),
            "entry 2: key secret is not base64url without padding"
        );
        // One spelling per secret: unused low bits of the last character
        // set, or padding, is not base64url without padding.
        // 32 bytes take 43 characters, whose last carries 2 unused bits.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut loose = b64.clone();
        let last = loose.pop().unwrap();
        let at = ALPHABET.iter().position(|&c| c == last as u8).unwrap();
        assert_eq!(at & 3, 0, "a canonical last character");
        loose.push(ALPHABET[at | 1] as char);
        assert_eq!(
            URL_SAFE_NO_PAD.decode_to_vec(loose.as_bytes()).ok(),
            None,
            "{loose}"
        );
        let err = Keyring::from_env_value(&format!("a:{loose}")).unwrap_err();
        assert_eq!(err.kind(), &KeyError::SecretEncoding);
        let err = Keyring::from_env_value(&format!("a:{b64},a:{b64}")).unwrap_err();
        assert_eq!(err.to_string(), "entry 2: key id is listed twice");
    }

    #[test]
    fn retiring_removes_a_verify_only_key_only() {
        let mut ring = Keyring::new(Key::new("a", S32).unwrap())
            .with_verify_key(Key::new("b", S32).unwrap())
            .unwrap();
        assert_eq!(ring.retire("a").err(), Some(KeyError::RetireActive));
        assert_eq!(ring.retire("zz").err(), Some(KeyError::NotListed));
        assert_eq!(ring.retire("b").unwrap().id(), "b");
        assert!(ring.get(b"b").is_none());
        assert_eq!(ring.keys().count(), 1);
    }

    #[test]
    fn set_active_rotates() {
        let mut ring = Keyring::new(Key::new("a", S32).unwrap())
            .with_verify_key(Key::new("b", S32).unwrap())
            .unwrap();
        ring.set_active("b").unwrap();
        assert_eq!(ring.active().id(), "b");
        assert!(ring.get(b"a").is_some());
        assert!(ring.set_active("zz").is_err());
    }
}
