//! The collector's RSA key ring. Private keys never leave this process: they are generated here,
//! stored as PKCS#8 PEM files readable only by the collector's user (mode 0600; the collector
//! refuses to start if a key file is readable by others) and used only for RSA-OAEP unwrapping,
//! with aws-lc-rs (constant-time).
//!
//! `keys/<key id>.pem` holds each key; `keys/current` names the key SDKs should seal to. Older keys
//! stay in the ring so batches sealed (or spooled) before a rotation still open.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use tracex_core::seal::KeyId;

/// A key-ring problem, reported at start or by the `keys` commands.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A private key file is readable by group or others.
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A key file does not hold a usable RSA key.
    #[error("{path}: not a usable RSA private key: {reason}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Key generation failed.
    #[error("generating an RSA key failed")]
    Generate,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_owned(), source }
}

/// One collector key.
pub struct CollectorKeyPair {
    /// SHA-256 of the public key's SPKI DER.
    pub key_id: KeyId,
    /// The public key, SPKI PEM.
    pub public_pem: String,
    /// Modulus size.
    pub bits: usize,
    oaep: OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for CollectorKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorKeyPair")
            .field("key_id", &self.key_id)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl CollectorKeyPair {
    fn from_private(private: PrivateDecryptingKey, path: &Path) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::BadKey { path: path.to_owned(), reason: reason.to_owned() };
        let bits = private.key_size_bits();
        let public = private.public_key();
        let spki = public.as_der().map_err(|_| bad("cannot encode the public key"))?;
        let key_id = KeyId::of_spki_der(spki.as_ref());
        let public_pem = pem("PUBLIC KEY", spki.as_ref());
        let oaep = OaepPrivateDecryptingKey::new(private).map_err(|_| bad("unsupported for RSA-OAEP"))?;
        Ok(Self { key_id, public_pem, bits, oaep })
    }

    /// Unwraps a data key (RSA-OAEP-SHA256, MGF1-SHA256, empty label).
    pub fn unwrap_data_key(&self, wrapped: &[u8]) -> Option<[u8; 32]> {
        let mut out = vec![0u8; self.oaep.min_output_size()];
        let plain = self.oaep.decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut out, None).ok()?;
        let key = <[u8; 32]>::try_from(&*plain).ok();
        out.fill(0);
        key
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    let _ = writeln!(s, "-----END {label}-----");
    s
}

fn unpem(text: &str) -> Option<Vec<u8>> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// All keys, and which is current.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: HashMap<KeyId, Arc<CollectorKeyPair>>,
    current: Arc<CollectorKeyPair>,
}

impl KeyRing {
    /// Loads the ring from `dir`, generating the first key if there is none. Refuses key files that
    /// others can read.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        create_private_dir(dir)?;
        let ring = Self::load(dir)?;
        match ring {
            Some(r) => Ok(r),
            None => {
                let key = generate(dir)?;
                write_current(dir, &key.key_id)?;
                Self::load(dir)?.ok_or(KeyError::Generate)
            }
        }
    }

    fn load(dir: &Path) -> Result<Option<Self>, KeyError> {
        let mut keys = HashMap::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            check_private_mode(&path)?;
            let text = fs::read_to_string(&path).map_err(io(&path))?;
            let der = unpem(&text).ok_or_else(|| KeyError::BadKey { path: path.clone(), reason: "not PEM".into() })?;
            let private = PrivateDecryptingKey::from_pkcs8(&der)
                .map_err(|e| KeyError::BadKey { path: path.clone(), reason: e.to_string() })?;
            let pair = CollectorKeyPair::from_private(private, &path)?;
            keys.insert(pair.key_id, Arc::new(pair));
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let current_path = dir.join("current");
        let current = match fs::read_to_string(&current_path) {
            Ok(text) => KeyId::from_hex(text.trim()).ok().filter(|id| keys.contains_key(id)),
            Err(_) => None,
        };
        let current = match current {
            Some(c) => keys.get(&c).cloned(),
            // No (valid) pointer: the only key, or refuse to guess between several.
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        };
        let current = current.ok_or_else(|| KeyError::BadKey {
            path: current_path,
            reason: "missing or names no key in the ring".into(),
        })?;
        Ok(Some(Self { keys, current }))
    }

    /// Generates a new key, makes it current and returns the new ring. Older keys keep working.
    pub fn rotate(dir: &Path) -> Result<Self, KeyError> {
        create_private_dir(dir)?;
        let key = generate(dir)?;
        write_current(dir, &key.key_id)?;
        Self::load(dir)?.ok_or(KeyError::Generate)
    }

    /// The key SDKs should seal to.
    pub fn current(&self) -> Arc<CollectorKeyPair> {
        self.current.clone()
    }

    /// A key by id.
    pub fn get(&self, id: &KeyId) -> Option<Arc<CollectorKeyPair>> {
        self.keys.get(id).cloned()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true for a loaded ring.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A private key's PKCS#8 DER, wiped on drop.
pub type PrivateDer = zeroize::Zeroizing<Vec<u8>>;

/// Every private key in `dir` (PKCS#8 DER, wiped on drop) and the current key's id: what a fleet
/// bundle carries (`crate::key_bundle`). Loads the ring first, so only a ring the collector would
/// start with is exported.
pub fn private_keys(dir: &Path) -> Result<(Vec<PrivateDer>, KeyId), KeyError> {
    let none = || KeyError::BadKey {
        path: dir.to_owned(),
        reason: "no keys yet (`tracex-collector keys show` or a first start creates them)".into(),
    };
    if !dir.exists() {
        return Err(none());
    }
    let ring = KeyRing::load(dir)?.ok_or_else(none)?;
    let mut ders = Vec::with_capacity(ring.len());
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("pem") {
            let text = zeroize::Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
            let der = unpem(&text).ok_or_else(|| KeyError::BadKey { path: path.clone(), reason: "not PEM".into() })?;
            ders.push(zeroize::Zeroizing::new(der));
        }
    }
    Ok((ders, ring.current().key_id))
}

/// Adds the keys `ders` (PKCS#8 DER) to the ring in `dir` and makes `current` the current key:
/// how a fleet member takes a bundle in. Keys already there are kept as they are. Returns how many
/// keys were new.
pub fn install_private_keys(
    dir: &Path,
    ders: &[zeroize::Zeroizing<Vec<u8>>],
    current: &KeyId,
) -> Result<usize, KeyError> {
    create_private_dir(dir)?;
    let mut added = 0;
    let mut ids = Vec::with_capacity(ders.len());
    for der in ders {
        let tmp = dir.join(".import-key.tmp");
        let private = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|e| KeyError::BadKey { path: tmp.clone(), reason: e.to_string() })?;
        let pair = CollectorKeyPair::from_private(private, &tmp)?;
        ids.push(pair.key_id);
        let path = dir.join(format!("{}.pem", pair.key_id.to_hex()));
        if path.exists() {
            continue;
        }
        write_private(&tmp, pem("PRIVATE KEY", der).as_bytes())?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        added += 1;
    }
    if !ids.contains(current) {
        return Err(KeyError::BadKey {
            path: dir.join("current"),
            reason: "the bundle's current key is not in it".into(),
        });
    }
    write_current(dir, current)?;
    Ok(added)
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: path.to_owned(), mode });
        }
    }
    Ok(())
}

fn generate(dir: &Path) -> Result<CollectorKeyPair, KeyError> {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa3072).map_err(|_| KeyError::Generate)?;
    let der = private.as_der().map_err(|_| KeyError::Generate)?;
    let pem_text = pem("PRIVATE KEY", der.as_ref());
    let tmp = dir.join(".new-key.tmp");
    let pair = CollectorKeyPair::from_private(private, &tmp)?;
    let path = dir.join(format!("{}.pem", pair.key_id.to_hex()));
    write_private(&tmp, pem_text.as_bytes())?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(pair)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    crate::private::write_private_file(path, bytes).map_err(io(path))
}

fn write_current(dir: &Path, id: &KeyId) -> Result<(), KeyError> {
    let tmp = dir.join(".current.tmp");
    let path = dir.join("current");
    write_private(&tmp, format!("{}\n", id.to_hex()).as_bytes())?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tracex-keys-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn generates_once_rotates_and_keeps_old_keys() {
        let dir = temp_dir("rotate");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let first = ring.current().key_id;
        assert_eq!(ring.current().bits, 3072);
        assert_eq!(KeyRing::load_or_create(&dir).unwrap().current().key_id, first, "stable across restarts");
        let rotated = KeyRing::rotate(&dir).unwrap();
        assert_ne!(rotated.current().key_id, first);
        assert_eq!(rotated.len(), 2);
        assert!(rotated.get(&first).is_some(), "old keys still decrypt");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(format!("{}.pem", first.to_hex()))).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sdk_public_key_matches_and_unwraps() {
        let dir = temp_dir("unwrap");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let key = ring.current();
        let sdk_side = tracex_core::CollectorKey::from_pem(&key.public_pem).unwrap();
        assert_eq!(sdk_side.key_id(), key.key_id, "SDK and collector agree on the fingerprint");
        let data_key = [42u8; 32];
        let wrapped = sdk_side.wrap(&data_key).unwrap();
        assert_eq!(key.unwrap_data_key(&wrapped), Some(data_key));
        let mut tampered = wrapped.clone();
        tampered[10] ^= 1;
        assert_eq!(key.unwrap_data_key(&tampered), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn refuses_keys_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let path = dir.join(format!("{}.pem", ring.current().key_id.to_hex()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load_or_create(&dir).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shared_test_vector_key_unwraps_the_vectors() {
        // The collector side of the wire-format vectors: aws-lc-rs unwraps what the SDKs wrapped.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
        let der = unpem(&fs::read_to_string(root.join("collector-test-key.pem")).unwrap()).unwrap();
        let pair = CollectorKeyPair::from_private(PrivateDecryptingKey::from_pkcs8(&der).unwrap(), &root).unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(root.join("envelope-v1.json")).unwrap()).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            assert_eq!(pair.key_id.to_hex(), case["key_id"].as_str().unwrap());
            let wrapped = hex::decode(case["wrapped_key"].as_str().unwrap()).unwrap();
            assert_eq!(hex::encode(pair.unwrap_data_key(&wrapped).unwrap()), case["data_key"].as_str().unwrap());
        }
    }
}
