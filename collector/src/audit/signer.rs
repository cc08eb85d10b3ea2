//! The audit key: an Ed25519 key that signs checkpoints and receipts, separate from the RSA key
//! (a leaked RSA key opens batches; a leaked audit key forges history — they are rotated and
//! guarded for different reasons). Generated here, kept in `keys/audit-ed25519.key` (mode 0600,
//! refused if others can read it, as the RSA keys are), never sent anywhere: only the public
//! verifier key (`<name>+<hash>+<base64>`, the C2SP signed-note format) is published.
//!
//! The file holds one line in the format Go's `golang.org/x/mod/sumdb/note` signers use,
//! `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`, so a fleet can share one key by copying
//! the file, and tools that speak signed notes can read it.

use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tracex_core::audit::note::{self, ED25519, VerifierKey};

/// File name of the audit key in the keys directory.
pub const FILE: &str = "audit-ed25519.key";

/// An audit-key problem, reported at start.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// File system trouble.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The key file is readable by group or others.
    #[error("{0} is readable by other users (mode {1:o}); rotate the audit key and run `chmod 600`")]
    Permissions(PathBuf, u32),
    /// The file does not hold an audit key.
    #[error("{0}: not a tracex audit key ({1})")]
    BadKey(PathBuf, &'static str),
    /// No randomness.
    #[error("no randomness for a new audit key")]
    Random,
}

/// Signs the log's checkpoints and receipts.
pub struct AuditSigner {
    // aws-lc's Ed25519 (constant-time, its private key wiped when freed): a signature costs
    // 8.8 µs here against 18.2 µs for ed25519-dalek with its basepoint tables, and the collector
    // signs one for every stored batch (docs/benchmarks.md, audit trail).
    key: Ed25519KeyPair,
    verifier: VerifierKey,
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSigner").field("verifier", &self.verifier.to_string()).finish_non_exhaustive()
    }
}

impl AuditSigner {
    /// Loads the key from `keys_dir`, generating it (named `tracex-<8 hex digits of the public
    /// key>`) if there is none.
    pub fn load_or_create(keys_dir: &Path) -> Result<Self, SignerError> {
        let path = keys_dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_private_mode(&path)?;
                Self::parse(text.trim()).ok_or(SignerError::BadKey(path, "malformed"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed).map_err(|_| SignerError::Random)?;
                let public = public_key(&seed).ok_or(SignerError::BadKey(path.clone(), "a new seed refused"))?;
                let name = format!("tracex-{}", hex::encode(&public[..4]));
                let text = format!(
                    "PRIVATE+KEY+{name}+{}+{}\n",
                    hex::encode(note::key_hash(&name, &public)),
                    B64.encode([&[ED25519][..], &seed].concat())
                );
                write_private(keys_dir, &path, text.as_bytes())?;
                Self::parse(text.trim()).ok_or(SignerError::BadKey(path, "written but unreadable"))
            }
            Err(e) => Err(SignerError::Io(path, e)),
        }
    }

    /// Loads the key from `keys_dir`; `None` when there is none (nothing is created).
    pub fn load(keys_dir: &Path) -> Result<Option<Self>, SignerError> {
        let path = keys_dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_private_mode(&path)?;
                Self::parse(text.trim()).map(Some).ok_or(SignerError::BadKey(path, "malformed"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SignerError::Io(path, e)),
        }
    }

    /// The key file's line (checked), for a fleet bundle (`crate::key_bundle`); `None` when there
    /// is no key.
    pub fn read_line(keys_dir: &Path) -> Result<Option<zeroize::Zeroizing<String>>, SignerError> {
        let path = keys_dir.join(FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_private_mode(&path)?;
                let line = zeroize::Zeroizing::new(text.trim().to_owned());
                Self::parse(&line).ok_or(SignerError::BadKey(path, "malformed"))?;
                Ok(Some(line))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SignerError::Io(path, e)),
        }
    }

    /// Installs a key line from a fleet bundle as this collector's audit key, replacing the one
    /// there; returns the key it installed.
    pub fn install_line(keys_dir: &Path, line: &str) -> Result<Self, SignerError> {
        let path = keys_dir.join(FILE);
        let signer = Self::parse(line.trim()).ok_or(SignerError::BadKey(path.clone(), "malformed in the bundle"))?;
        write_private(keys_dir, &path, format!("{}\n", line.trim()).as_bytes())?;
        Ok(signer)
    }

    /// Parses the key file's line.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("PRIVATE+KEY+")?;
        // The base64 key may itself hold `+`: name and hash are the first two fields.
        let mut parts = rest.splitn(3, '+');
        let (name, hash, key) = (parts.next()?, parts.next()?, parts.next()?);
        let key = B64.decode(key).ok()?;
        let (&[alg], seed) = key.split_first_chunk::<1>()?;
        if alg != ED25519 || seed.len() != 32 {
            return None;
        }
        let key = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        let verifier = VerifierKey::new(name, key.public_key().as_ref().try_into().ok()?).ok()?;
        (hex::encode(verifier.hash()) == hash).then_some(Self { key, verifier })
    }

    /// The public verifier key, to publish and pin.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The key's name: also the log's origin line in its checkpoints.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// `text` (ending with a newline) as a note signed by this key.
    pub fn sign_note(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let signature = self.sign(text.as_bytes());
        format!("{text}\n{}", note::signature_line(self.name(), self.verifier.hash(), &signature))
    }

    /// The Ed25519 signature of `message` (RFC 8032, deterministic).
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0; 64];
        out.copy_from_slice(self.key.sign(message).as_ref());
        out
    }
}

/// The Ed25519 public key of a 32-byte seed.
fn public_key(seed: &[u8; 32]) -> Option<[u8; 32]> {
    Ed25519KeyPair::from_seed_unchecked(seed).ok()?.public_key().as_ref().try_into().ok()
}

fn check_private_mode(path: &Path) -> Result<(), SignerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(|e| SignerError::Io(path.to_owned(), e))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SignerError::Permissions(path.to_owned(), mode));
        }
    }
    Ok(())
}

fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SignerError> {
    fs::create_dir_all(dir).map_err(|e| SignerError::Io(dir.to_owned(), e))?;
    let tmp = dir.join(".audit-key.tmp");
    crate::private::write_private_file(&tmp, bytes).map_err(|e| SignerError::Io(tmp.clone(), e))?;
    fs::rename(&tmp, path).map_err(|e| SignerError::Io(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_with_a_plus_in_their_base64_parse() {
        // Seeds whose base64 holds `+` (about one in three): every one must load back.
        for i in 0..64u8 {
            let seed = [i.wrapping_mul(37); 32];
            let public = public_key(&seed).unwrap();
            let name = "tracex-test";
            let line = format!(
                "PRIVATE+KEY+{name}+{}+{}",
                hex::encode(note::key_hash(name, &public)),
                B64.encode([&[ED25519][..], &seed].concat())
            );
            let signer = AuditSigner::parse(&line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(signer.verifier().to_string(), VerifierKey::new(name, &public).unwrap().to_string());
        }
    }

    #[test]
    fn signs_as_rfc_8032_and_as_ed25519_dalek() {
        // RFC 8032 section 7.1, TEST 1 (the empty message) and TEST 2 (one byte, 0x72).
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                &b""[..],
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                &[0x72][..],
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (seed, public, message, signature) in vectors {
            let seed: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
            let line = format!(
                "PRIVATE+KEY+t+{}+{}",
                hex::encode(note::key_hash("t", &public_key(&seed).unwrap())),
                B64.encode([&[ED25519][..], &seed].concat())
            );
            let signer = AuditSigner::parse(&line).unwrap();
            assert_eq!(hex::encode(public_key(&seed).unwrap()), public);
            assert_eq!(hex::encode(signer.sign(message)), signature);
            // The core verifies with ed25519-dalek: the same deterministic signature.
            use ed25519_dalek::Signer as _;
            assert_eq!(signer.sign(message), ed25519_dalek::SigningKey::from_bytes(&seed).sign(message).to_bytes());
        }
    }

    #[test]
    fn generates_once_signs_notes_the_core_opens_and_refuses_readable_files() {
        let dir = std::env::temp_dir().join(format!("tracex-audit-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = AuditSigner::load_or_create(&dir).unwrap();
        let b = AuditSigner::load_or_create(&dir).unwrap();
        assert_eq!(a.verifier().to_string(), b.verifier().to_string(), "the second start loads the same key");
        assert!(a.name().starts_with("tracex-"));
        let signed = a.sign_note("hello\n");
        assert_eq!(note::open(&signed, &VerifierKey::parse(&b.verifier().to_string()).unwrap()).unwrap(), "hello\n");
        let mut forged = signed.clone();
        forged.replace_range(0..1, "j");
        assert!(note::open(&forged, b.verifier()).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(FILE);
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(AuditSigner::load_or_create(&dir), Err(SignerError::Permissions(..))));
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
