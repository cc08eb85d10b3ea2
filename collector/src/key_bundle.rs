//! Fleet key distribution: every collector of a fleet must open batches sealed to the fleet's RSA
//! key and sign the audit log with the fleet's audit key. `keys export` writes them all into one
//! bundle encrypted under a passphrase; `keys import` on another collector takes it in. The
//! bundle is never written or logged in clear: it can travel through a secret manager, a CI
//! variable or a file.
//!
//! Format: `-----BEGIN TRACEX KEY BUNDLE-----`, base64 of
//! `"TRXKEYS1" · iterations (u32 BE) · salt (16) · nonce (12) · AES-256-GCM(plaintext)`, with the
//! first 32 bytes as associated data, the key PBKDF2-HMAC-SHA256(passphrase, salt, iterations),
//! and the plaintext `current key id (32) · count (u8) · count × (len (u32 BE) · PKCS#8 DER) · len
//! (u32 BE) · audit key line` (len 0: none). A wrong passphrase and a tampered bundle fail the same
//! way: the tag does not verify.

use std::num::NonZeroU32;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tracex_core::seal::KeyId;
use zeroize::Zeroizing;

use crate::audit::signer::AuditSigner;

const MAGIC: &[u8; 8] = b"TRXKEYS1";
const BEGIN: &str = "-----BEGIN TRACEX KEY BUNDLE-----";
const END: &str = "-----END TRACEX KEY BUNDLE-----";
const SALT_LEN: usize = 16;
/// PBKDF2-HMAC-SHA256 iterations: OWASP's 2023 figure for that function (≈ 0.3 s here, once per
/// export or import).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Fewer iterations are refused on import: a bundle with fewer was not written by this code.
const MIN_ITERATIONS: u32 = 100_000;
/// Shortest passphrase accepted: a bundle holds every private key of the fleet.
pub const MIN_PASSPHRASE_LEN: usize = 16;

/// A bundle problem.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The passphrase is too short to protect private keys.
    #[error("the passphrase must be at least {MIN_PASSPHRASE_LEN} characters")]
    WeakPassphrase,
    /// Not a bundle (armour, base64, magic, lengths).
    #[error("not a tracex key bundle: {0}")]
    Malformed(&'static str),
    /// Wrong passphrase, or the bundle was altered.
    #[error("the bundle does not open with this passphrase (wrong passphrase, or the bundle was altered)")]
    Open,
    /// The bundle's audit key differs from the one this collector already has.
    #[error(
        "this collector already has a different audit key ({0}); its checkpoints were signed with it. \
         Pass --replace-audit-key to take the fleet's"
    )]
    AuditKeyDiffers(String),
    /// Reading or writing the key files.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    /// Reading or writing the audit key.
    #[error(transparent)]
    Audit(#[from] crate::audit::signer::SignerError),
    /// No randomness for the salt and nonce.
    #[error("no randomness")]
    Random,
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    /// RSA keys that were new to this collector.
    pub keys_added: usize,
    /// The current RSA key now.
    pub current: KeyId,
    /// The audit key's verifier key, if the bundle carried one.
    pub audit_key: Option<String>,
}

/// The keys in `keys_dir` as an armoured bundle encrypted under `passphrase`.
pub fn export(keys_dir: &Path, passphrase: &str) -> Result<String, BundleError> {
    export_with(keys_dir, passphrase, PBKDF2_ITERATIONS)
}

fn export_with(keys_dir: &Path, passphrase: &str, iterations: u32) -> Result<String, BundleError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
        return Err(BundleError::WeakPassphrase);
    }
    let (ders, current) = crate::keys::private_keys(keys_dir)?;
    let audit = AuditSigner::read_line(keys_dir)?;
    let mut plain = Zeroizing::new(Vec::new());
    plain.extend_from_slice(&current.0);
    plain.push(u8::try_from(ders.len()).map_err(|_| BundleError::Malformed("more than 255 keys"))?);
    for der in &ders {
        put(&mut plain, der);
    }
    put(&mut plain, audit.as_ref().map_or(&[][..], |line| line.as_bytes()));

    let mut header = Vec::with_capacity(32);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&iterations.to_be_bytes());
    let mut salt_nonce = [0u8; SALT_LEN + NONCE_LEN];
    aws_lc_rs::rand::fill(&mut salt_nonce).map_err(|_| BundleError::Random)?;
    header.extend_from_slice(&salt_nonce);
    let key = derive(passphrase, &salt_nonce[..SALT_LEN], iterations)?;
    let nonce = Nonce::try_assume_unique_for_key(&salt_nonce[SALT_LEN..]).map_err(|_| BundleError::Random)?;
    let mut sealed = plain.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(&header[..]), &mut sealed).map_err(|_| BundleError::Random)?;
    header.extend_from_slice(&sealed);
    let b64 = B64.encode(&header);
    let mut out = format!("{BEGIN}\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    Ok(out)
}

/// Opens `armoured` with `passphrase` and installs its keys in `keys_dir`: the RSA keys join the
/// ring (the bundle's current key becomes current), and the audit key is installed — over a
/// different one only with `replace_audit_key`.
pub fn import(
    keys_dir: &Path,
    armoured: &str,
    passphrase: &str,
    replace_audit_key: bool,
) -> Result<Imported, BundleError> {
    let body: String =
        armoured.lines().map(str::trim).skip_while(|l| *l != BEGIN).skip(1).take_while(|l| *l != END).collect();
    let bytes = B64.decode(body).map_err(|_| BundleError::Malformed("not base64 between the armour lines"))?;
    let (header, sealed) =
        bytes.split_at_checked(8 + 4 + SALT_LEN + NONCE_LEN).ok_or(BundleError::Malformed("too short"))?;
    if &header[..8] != MAGIC {
        return Err(BundleError::Malformed("unknown format"));
    }
    let iterations = u32::from_be_bytes(header[8..12].try_into().map_err(|_| BundleError::Malformed("header"))?);
    if iterations < MIN_ITERATIONS {
        return Err(BundleError::Malformed("too few key-derivation iterations"));
    }
    let (salt, nonce) = header[12..].split_at(SALT_LEN);
    let key = derive(passphrase, salt, iterations)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| BundleError::Malformed("nonce"))?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plain = key.open_in_place(nonce, Aad::from(header), &mut buf).map_err(|_| BundleError::Open)?;

    let mut r = plain as &[u8];
    let current = KeyId(take(&mut r, 32)?.try_into().map_err(|_| BundleError::Malformed("key id"))?);
    let count = take(&mut r, 1)?[0];
    let mut ders = Vec::with_capacity(count.into());
    for _ in 0..count {
        ders.push(Zeroizing::new(take_len(&mut r)?.to_vec()));
    }
    let audit =
        Zeroizing::new(String::from_utf8(take_len(&mut r)?.to_vec()).map_err(|_| BundleError::Malformed("audit key"))?);
    if !r.is_empty() {
        return Err(BundleError::Malformed("trailing bytes"));
    }

    // The audit key first: refusing it must leave the RSA ring untouched too.
    let audit_key = if audit.is_empty() {
        None
    } else {
        let existing = AuditSigner::read_line(keys_dir)?;
        if let Some(line) = existing.as_deref().filter(|l| **l != *audit.trim()) {
            if !replace_audit_key {
                let name = line.trim_start_matches("PRIVATE+KEY+").split('+').next().unwrap_or("?").to_owned();
                return Err(BundleError::AuditKeyDiffers(name));
            }
        }
        Some(AuditSigner::install_line(keys_dir, &audit)?.verifier().to_string())
    };
    let keys_added = crate::keys::install_private_keys(keys_dir, &ders, &current)?;
    Ok(Imported { keys_added, current, audit_key })
}

fn derive(passphrase: &str, salt: &[u8], iterations: u32) -> Result<LessSafeKey, BundleError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
        return Err(BundleError::WeakPassphrase);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    let n = NonZeroU32::new(iterations).ok_or(BundleError::Malformed("zero iterations"))?;
    aws_lc_rs::pbkdf2::derive(aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256, n, salt, passphrase.as_bytes(), &mut key[..]);
    let unbound = UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| BundleError::Random)?;
    Ok(LessSafeKey::new(unbound))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], BundleError> {
    let (head, rest) = r.split_at_checked(n).ok_or(BundleError::Malformed("truncated"))?;
    *r = rest;
    Ok(head)
}

fn take_len<'a>(r: &mut &'a [u8]) -> Result<&'a [u8], BundleError> {
    let n = u32::from_be_bytes(take(r, 4)?.try_into().map_err(|_| BundleError::Malformed("length"))?);
    take(r, usize::try_from(n).map_err(|_| BundleError::Malformed("length"))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyRing;

    const PASS: &str = "correct horse battery staple";
    /// Enough for the tests (the real count is 6× slower and proves nothing more here).
    const FAST: u32 = MIN_ITERATIONS;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tracex-bundle-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_bundle_carries_the_ring_and_the_audit_key_to_another_collector() {
        let (a, b) = (temp_dir("a"), temp_dir("b"));
        KeyRing::load_or_create(&a).unwrap();
        let rotated = KeyRing::rotate(&a).unwrap();
        let signer = AuditSigner::load_or_create(&a).unwrap();
        let bundle = export_with(&a, PASS, FAST).unwrap();
        // Nothing private in clear: no PEM, no audit key line.
        assert!(!bundle.contains("PRIVATE"), "{bundle}");

        let got = import(&b, &bundle, PASS, false).unwrap();
        assert_eq!(got.keys_added, 2);
        assert_eq!(got.current, rotated.current().key_id);
        assert_eq!(got.audit_key.as_deref(), Some(signer.verifier().to_string().as_str()));
        let ring = KeyRing::load_or_create(&b).unwrap();
        assert_eq!((ring.len(), ring.current().key_id), (2, rotated.current().key_id));
        assert_eq!(AuditSigner::load(&b).unwrap().unwrap().verifier(), signer.verifier());
        // Importing again adds nothing and changes nothing.
        assert_eq!(import(&b, &bundle, PASS, false).unwrap().keys_added, 0);
        #[cfg(unix)]
        for entry in std::fs::read_dir(&b).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "imported key files are private");
        }
    }

    #[test]
    fn wrong_passphrase_tampering_and_weak_passphrases_are_refused() {
        let (a, b) = (temp_dir("c"), temp_dir("d"));
        KeyRing::load_or_create(&a).unwrap();
        assert!(matches!(export_with(&a, "short", FAST), Err(BundleError::WeakPassphrase)));
        let bundle = export_with(&a, PASS, FAST).unwrap();
        assert!(matches!(import(&b, &bundle, "a different long passphrase", false), Err(BundleError::Open)));
        // One base64 character of the ciphertext changed.
        let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
        let line = &mut lines[3];
        let c = if line.ends_with('A') { 'B' } else { 'A' };
        line.pop();
        line.push(c);
        assert!(matches!(import(&b, &lines.join("\n"), PASS, false), Err(BundleError::Open)));
        assert!(matches!(import(&b, "hello", PASS, false), Err(BundleError::Malformed(_))));
        assert!(!b.join("current").exists(), "nothing was installed");
    }

    #[test]
    fn a_different_audit_key_is_replaced_only_when_asked() {
        let (a, b) = (temp_dir("e"), temp_dir("f"));
        KeyRing::load_or_create(&a).unwrap();
        let fleet = AuditSigner::load_or_create(&a).unwrap();
        let own = AuditSigner::load_or_create(&b).unwrap();
        let bundle = export_with(&a, PASS, FAST).unwrap();
        let err = import(&b, &bundle, PASS, false).unwrap_err();
        assert!(matches!(&err, BundleError::AuditKeyDiffers(name) if name == own.name()), "{err}");
        assert!(
            KeyRing::load_or_create(&b).unwrap().get(&KeyRing::load_or_create(&a).unwrap().current().key_id).is_none()
        );
        import(&b, &bundle, PASS, true).unwrap();
        assert_eq!(AuditSigner::load(&b).unwrap().unwrap().verifier(), fleet.verifier());
    }
}
