//! C2SP signed notes (<https://c2sp.org/signed-note>, the format of Go's `sumdb/note`): a text
//! ending in a newline, a blank line, and one line per signature, `— <key name> <base64(key hash
//! || signature)>`. The collector signs its checkpoints and receipts this way with an Ed25519
//! audit key, so any verifier of the ecosystem (witnesses, Go's `note.Open`) can check them;
//! here they are only verified (the core never holds the private key).

use base64ct::{Base64, Encoding as _};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The signature type byte of Ed25519 keys.
pub const ED25519: u8 = 0x01;

/// Most signature lines a note may carry (as Go's `note.Open`): past it, it is refused before any
/// signature is checked.
pub const MAX_SIGNATURES: usize = 100;

/// The line prefix of a signature: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

fn fail(why: impl Into<String>) -> Error {
    Error::Audit(why.into())
}

/// A verifier key, `<name>+<key hash, 8 hex digits>+<base64(0x01 || Ed25519 public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

/// The key hash: the first 4 bytes of `SHA-256(name || "\n" || type || public key)`.
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let d = Sha256::new()
        .chain_update(name)
        .chain_update(b"\n")
        .chain_update([ED25519])
        .chain_update(public_key)
        .finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A key name is non-empty, and holds no `+` and no whitespace (Unicode's included).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c == '+' || c.is_whitespace())
}

impl VerifierKey {
    /// The verifier key of the Ed25519 `public_key` named `name`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self> {
        if !valid_name(name) {
            return Err(fail(format!("invalid key name {name:?}")));
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| fail("not an Ed25519 public key"))?;
        Ok(Self { name: name.to_owned(), hash: key_hash(name, public_key), key })
    }

    /// Parses the text form (what [`std::fmt::Display`] writes).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || fail(format!("malformed verifier key {text:?}"));
        // The name cannot hold '+'; the base64 can.
        let (name, rest) = text.split_once('+').ok_or_else(bad)?;
        let (hash_hex, key_b64) = rest.split_once('+').ok_or_else(bad)?;
        let mut hash = [0u8; 4];
        if hash_hex.len() != 8 || hex_decode(hash_hex, &mut hash).is_none() {
            return Err(bad());
        }
        let typed = Base64::decode_vec(key_b64).map_err(|_| bad())?;
        let Some((&ED25519, key)) = typed.split_first() else {
            return Err(fail(format!("verifier key {name:?}: not an Ed25519 key")));
        };
        let key: &[u8; 32] = key.try_into().map_err(|_| bad())?;
        let parsed = Self::new(name, key)?;
        if parsed.hash != hash {
            return Err(fail(format!("verifier key {name:?}: the key hash does not match the key")));
        }
        Ok(parsed)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key hash.
    pub fn hash(&self) -> [u8; 4] {
        self.hash
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` is this key's Ed25519 signature of `text`.
    pub(crate) fn verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else { return false };
        // Strict: rejects the malleable and small-order encodings plain `verify` would take.
        self.key.verify_strict(text, &sig).is_ok()
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut typed = [0u8; 33];
        typed[0] = ED25519;
        typed[1..].copy_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:02x}{:02x}{:02x}{:02x}+{}",
            self.name,
            self.hash[0],
            self.hash[1],
            self.hash[2],
            self.hash[3],
            Base64::encode_string(&typed)
        )
    }
}

fn hex_decode(s: &str, out: &mut [u8]) -> Option<()> {
    let b = s.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        // Lower case only, as written.
        if b[2 * i].is_ascii_uppercase() || b[2 * i + 1].is_ascii_uppercase() {
            return None;
        }
        *o = u8::try_from(digit(b[2 * i])? * 16 + digit(b[2 * i + 1])?).ok()?;
    }
    Some(())
}

/// One signature line of a note: `— <name> <base64(key hash || signature)>\n`.
pub fn signature_line(name: &str, key_hash: [u8; 4], signature: &[u8; 64]) -> String {
    let mut blob = [0u8; 68];
    blob[..4].copy_from_slice(&key_hash);
    blob[4..].copy_from_slice(signature);
    format!("{SIGNATURE_PREFIX}{name} {}\n", Base64::encode_string(&blob))
}

/// A note's text and signatures, split but not verified.
struct Parts<'a> {
    text: &'a str,
    signatures: Vec<(&'a str, [u8; 4], Vec<u8>)>,
}

fn split(note: &str) -> Result<Parts<'_>> {
    if !note.ends_with('\n') {
        return Err(fail("malformed note: it must end with a newline"));
    }
    // The text ends at the last blank line; the signature lines follow it.
    let at = note.rfind("\n\n").ok_or_else(|| fail("malformed note: no signature block"))?;
    let (text, block) = (&note[..=at], &note[at + 2..]);
    let mut signatures = Vec::new();
    for line in block.lines() {
        if signatures.len() == MAX_SIGNATURES {
            return Err(fail("malformed note: too many signatures"));
        }
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| fail("malformed note: a line of the signature block is not a signature"))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| fail("malformed note: a signature without a name"))?;
        let blob = Base64::decode_vec(b64).map_err(|_| fail("malformed note: a signature is not base64"))?;
        if !valid_name(name) || blob.len() < 5 {
            return Err(fail("malformed note: a signature line is malformed"));
        }
        signatures.push((name, [blob[0], blob[1], blob[2], blob[3]], blob[4..].to_vec()));
    }
    if signatures.is_empty() {
        return Err(fail("malformed note: no signatures"));
    }
    Ok(Parts { text, signatures })
}

/// Verifies `note` against `key`: returns the note's text when it carries a valid signature by
/// `key`. Signatures by other keys are ignored (witnesses add theirs); a signature that names
/// `key` and does not verify is an error, whatever else the note carries.
pub fn open<'a>(note: &'a str, key: &VerifierKey) -> Result<&'a str> {
    opened(note, key, true).map(|(text, _)| text)
}

/// `note`'s text and its signatures by `key`, each verified if `verify` (else for a host that
/// checks Ed25519 itself: the WASM package, with WebCrypto). An error when the note is malformed or
/// carries no signature by `key`. One function for both (a loop, not an iterator chain): the WASM
/// module holds every byte of it.
pub(crate) fn opened<'a>(note: &'a str, key: &VerifierKey, verify: bool) -> Result<(&'a str, Vec<Vec<u8>>)> {
    let parts = split(note)?;
    let mut signatures = Vec::new();
    for (name, hash, sig) in parts.signatures {
        if name == key.name && hash == key.hash {
            if verify && !key.verifies(parts.text.as_bytes(), &sig) {
                return Err(fail(format!("note: the signature by {name:?} does not verify")));
            }
            signatures.push(sig);
        }
    }
    if signatures.is_empty() {
        return Err(fail(format!("note: no signature by {:?}", key.name)));
    }
    Ok((parts.text, signatures))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Go's `golang.org/x/mod/sumdb/note` (its package documentation and tests),
    /// also in `tests/vectors/audit.json`.
    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIG: &str = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

    fn note() -> String {
        format!("{TEXT}\n\u{2014} PeterNeumann {SIG}\n")
    }

    #[test]
    fn the_go_example_verifies_and_round_trips() {
        let key = VerifierKey::parse(PETER).unwrap();
        assert_eq!((key.name(), key.to_string().as_str()), ("PeterNeumann", PETER));
        assert_eq!(open(&note(), &key).unwrap(), TEXT);
        // Another signer's line is ignored.
        let other = format!(
            "{}\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n",
            note()
        );
        assert_eq!(open(&other, &key).unwrap(), TEXT);
    }

    #[test]
    fn tampering_anywhere_fails() {
        let key = VerifierKey::parse(PETER).unwrap();
        let good = note();
        for bad in [
            good.replace("cryptography", "cryptographY"),
            good.replace("x08go", "x08gp"),
            good.replace("PeterNeumann", "PeterNeumanN"),
            good.trim_end().to_owned(),
            format!("{TEXT}\n"),
            good.replace('\u{2014}', "-"),
            good.replace("\n\n", "\n"),
        ] {
            assert!(open(&bad, &key).is_err(), "{bad:?}");
        }
        let many = format!("{TEXT}\n{}", format!("\u{2014} x {SIG}\n").repeat(MAX_SIGNATURES + 1));
        assert!(open(&many, &key).unwrap_err().to_string().contains("too many"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+AhpcMqQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
