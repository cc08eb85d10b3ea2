//! `tracex-witness`: a second party's check of a tracex collector's audit log (docs/audit.md).
//! Run it from cron or a loop. It verifies that the collector's latest checkpoint is signed by
//! the pinned audit key and extends the checkpoint kept from the last run (consistency proof),
//! then keeps the new one. With `--cosign-key`, it also co-signs it with the witness's own
//! Ed25519 key and prints the co-signed note. Exit status: 0 = consistent, 2 = the log was
//! rolled back, forked or rewritten (or is signed by another key), 1 = it could not check.
//!
//! ```text
//! tracex-witness --collector http://127.0.0.1:3002 --read-key trx_read_… \
//!     --audit-key 'tracex-41d6af2c+2b64780a+AUHW…' --state witness/checkpoint [--cosign-key witness/key]
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use tracex_core::audit::note::{self, VerifierKey};
use tracex_core::audit::{Checkpoint, witness};

struct Args {
    collector: String,
    read_key: String,
    audit_key: String,
    state: PathBuf,
    cosign_key: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut collector, mut read_key, mut audit_key, mut state, mut cosign_key) = (None, None, None, None, None);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--collector" => collector = Some(value()?),
            "--read-key" => read_key = Some(value()?),
            "--audit-key" => audit_key = Some(value()?),
            "--state" => state = Some(PathBuf::from(value()?)),
            "--cosign-key" => cosign_key = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(Args {
        collector: need(collector, "--collector")?.trim_end_matches('/').to_owned(),
        read_key: need(read_key, "--read-key")?,
        audit_key: need(audit_key, "--audit-key")?,
        state: state.ok_or("--state is required")?,
        cosign_key,
    })
}

fn get(client: &reqwest::blocking::Client, url: &str, key: &str) -> Result<String, String> {
    let r = client.get(url).bearer_auth(key).send().map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let text = r.text().map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    Ok(text)
}

/// Writes `bytes` to `path` through a temporary file and a rename, readable by the owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The witness's signing key: a 32-byte seed in hex, created on first use.
fn cosigner(path: &Path) -> Result<SigningKey, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut seed = [0u8; 32];
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!("{}: not a 64-hex-digit seed", path.display()));
        }
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| format!("{}: not hex", path.display()))?;
        }
        return Ok(SigningKey::from_bytes(&seed));
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let hex: String = seed.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    write_atomically(path, format!("{hex}\n").as_bytes())?;
    Ok(SigningKey::from_bytes(&seed))
}

fn run(a: &Args) -> Result<bool, String> {
    let key = VerifierKey::parse(&a.audit_key).map_err(|e| format!("--audit-key: {e}"))?;
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let kept = std::fs::read_to_string(&a.state).ok();
    let latest = get(&client, &format!("{}/api/v1/audit/checkpoint", a.collector), &a.read_key)?;
    let new_size = Checkpoint::open(&latest, key.name(), &key).map_or(0, |c| c.size);
    let mut proof = Vec::new();
    let old = kept.as_deref().and_then(|k| Checkpoint::open(k, key.name(), &key).ok());
    if let Some(old) = old.filter(|o| o.size > 0 && o.size < new_size) {
        let url = format!("{}/api/v1/audit/consistency?from={}&to={new_size}", a.collector, old.size);
        let body: serde_json::Value =
            serde_json::from_str(&get(&client, &url, &a.read_key)?).map_err(|e| format!("{url}: {e}"))?;
        for h in body["hashes"].as_array().ok_or_else(|| format!("{url}: no hashes"))? {
            let bytes = B64.decode(h.as_str().unwrap_or_default()).map_err(|e| format!("{url}: {e}"))?;
            proof.push(<[u8; 32]>::try_from(bytes).map_err(|_| format!("{url}: a hash is not 32 bytes"))?);
        }
    }
    let checkpoint = match witness::check_extension(&key, kept.as_deref(), &latest, &proof) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tracex-witness: ALARM: {e}");
            return Ok(false);
        }
    };
    write_atomically(&a.state, latest.as_bytes())?;
    eprintln!("tracex-witness: {} leaves, consistent with the kept checkpoint", checkpoint.size);
    if let Some(path) = &a.cosign_key {
        let signer = cosigner(path)?;
        let public = signer.verifying_key().to_bytes();
        let name = format!("witness-{:02x}{:02x}{:02x}{:02x}", public[0], public[1], public[2], public[3]);
        let witness_key = VerifierKey::new(&name, &public).map_err(|e| e.to_string())?;
        let text = checkpoint.to_text();
        let signature = signer.sign(text.as_bytes()).to_bytes();
        print!("{latest}{}", note::signature_line(&name, witness_key.hash(), &signature));
        eprintln!("tracex-witness: co-signed as {witness_key}");
    }
    Ok(true)
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tracex-witness: {e}");
            return ExitCode::from(1);
        }
    };
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("tracex-witness: cannot check: {e}");
            ExitCode::from(1)
        }
    }
}
