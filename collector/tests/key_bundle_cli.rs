//! `keys export` / `keys import` as an operator runs them with the passphrase in a file (a mounted
//! secret), not in `TRACEX_KEYS_PASSPHRASE`: the imported collector opens batches sealed to the
//! exporter's key and signs with its audit key, a wrong passphrase installs nothing, and no
//! passphrase or private key reaches the commands' output or the collector's log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{
    Collector, cli_env, client, create_key, get_json, post_batch, public_key_pem, seal_spans, settle_span, temp_dir,
};
use tracex_core::seal::CollectorKey;

const PASSPHRASE: &str = "the fleet passphrase, from a file";
const WRONG: &str = "not the fleet passphrase, though long";
/// Left out of every command's environment: the passphrase can only come from the file.
const VAR: &str = "TRACEX_KEYS_PASSPHRASE";

fn keys(dir: &Path, args: &[&str]) -> (bool, String, String) {
    cli_env(dir, &[&["keys"], args].concat(), &[], &[VAR])
}

/// Text that must never be printed: every base64 line of the private keys' PEM files, the audit
/// key's line and its key field.
fn secrets(keys_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(keys_dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "pem") {
            // Short last lines could turn up in any base64 by chance.
            out.extend(text.lines().filter(|l| !l.starts_with("-----") && l.len() >= 24).map(str::to_owned));
        } else if path.file_name().unwrap() == "audit-ed25519.key" {
            let line = text.trim();
            out.push(line.to_owned());
            out.push(line.splitn(5, '+').nth(4).unwrap().to_owned());
        }
    }
    out
}

/// Every file of `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

fn fingerprint(show: &str) -> &str {
    show.lines().find_map(|l| l.strip_prefix("fingerprint: ")).unwrap()
}

#[test]
fn keys_travel_in_a_bundle_opened_with_a_passphrase_file() {
    let (dir_a, dir_b, dir_c, secret_dir) =
        (temp_dir("bundle-a"), temp_dir("bundle-b"), temp_dir("bundle-c"), temp_dir("bundle-secrets"));
    // A has served once: it has its RSA key and its audit key.
    let a = Collector::start(&dir_a);
    let audit_key: serde_json::Value = client().get(format!("{}/v1/audit-key", a.url)).send().unwrap().json().unwrap();
    assert!(a.terminate().success());
    let pem = public_key_pem(&dir_a);
    let (ok, shown, err) = keys(&dir_a, &["show"]);
    assert!(ok, "{err}");
    let fleet = fingerprint(&shown).to_owned();
    let never = secrets(&dir_a.join("keys"));
    assert!(never.len() > 2, "the RSA key's lines and the audit key: {never:?}");

    // Files as `echo … > file` writes them: the first line is the passphrase.
    let file = |name: &str, text: &str| {
        let path = secret_dir.join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (good, wrong, short) = (file("good", PASSPHRASE), file("wrong", WRONG), file("short", "too short"));
    let bundle = secret_dir.join("fleet.bundle");
    let bundle = bundle.to_str().unwrap();
    let mut outputs = Vec::new();

    let (ok, out, err) = keys(&dir_a, &["export", "--out", bundle, "--passphrase-file", &short]);
    assert!(!ok && err.contains("at least 16 characters"), "{err}");
    assert!(!Path::new(bundle).exists(), "a refused export writes nothing");
    outputs.push(("export, short passphrase", out, err));
    let (ok, out, err) = keys(&dir_a, &["export", "--out", bundle, "--passphrase-file", &good]);
    assert!(ok, "{err}");
    assert_eq!(out, "", "the bundle goes to the file only");
    outputs.push(("export", out, err));
    let text = std::fs::read_to_string(bundle).unwrap();
    assert!(text.starts_with("-----BEGIN TRACEX KEY BUNDLE-----\n"), "{text}");
    assert!(never.iter().all(|s| !text.contains(s.as_str())) && !text.contains("PRIVATE"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(bundle).unwrap().permissions().mode() & 0o077, 0, "the bundle file is private");
    }

    // C has a key of its own; a wrong passphrase leaves its keys directory byte for byte as it was.
    let (ok, own, err) = keys(&dir_c, &["show"]);
    assert!(ok, "{err}");
    let before = files(&dir_c.join("keys"));
    let (ok, out, err) = keys(&dir_c, &["import", bundle, "--passphrase-file", &wrong]);
    assert!(!ok, "{out}");
    assert!(err.contains("the bundle does not open with this passphrase"), "{err}");
    assert_eq!(out, "", "nothing was reported as imported");
    assert_eq!(files(&dir_c.join("keys")), before, "a wrong passphrase installs nothing");
    assert_eq!(keys(&dir_c, &["show"]).1, own, "C still seals to its own key");
    outputs.push(("import, wrong passphrase", out, err));
    // Neither the variable nor a file: the error says how to give one.
    let (ok, out, err) = keys(&dir_c, &["import", bundle]);
    assert!(!ok && err.contains("--passphrase-file"), "{err}");
    assert_eq!(files(&dir_c.join("keys")), before);
    outputs.push(("import, no passphrase", out, err));

    let (ok, out, err) = keys(&dir_b, &["import", bundle, "--passphrase-file", &good]);
    assert!(ok, "{err}");
    assert!(out.contains("keys added: 1\n"), "{out}");
    assert!(out.contains(&format!("fingerprint: {fleet}\n")), "{out}");
    assert!(out.contains("keys in ring: 1\n"), "{out}");
    assert!(
        out.contains(&format!("audit key: {}\n", audit_key["verifier_key"].as_str().unwrap())),
        "{out} {audit_key}"
    );
    outputs.push(("import", out, err));
    assert_eq!(public_key_pem(&dir_b), pem, "B seals to the fleet key");
    // A file given wins over a (wrong) variable left in the environment.
    let dir_d = temp_dir("bundle-d");
    let (ok, out, err) = cli_env(&dir_d, &["keys", "import", bundle, "--passphrase-file", &good], &[(VAR, WRONG)], &[]);
    assert!(ok && out.contains("keys added: 1\n"), "{err}");
    outputs.push(("import, file and variable", out, err));

    for (what, out, err) in &outputs {
        for text in [out, err] {
            assert!(!text.contains(PASSPHRASE) && !text.contains(WRONG), "{what}: a passphrase in {text:?}");
            assert!(!text.contains("PRIVATE"), "{what}: {text:?}");
            for s in &never {
                assert!(!text.contains(s.as_str()), "{what}: private key material in {text:?}");
            }
        }
    }

    // B opens a batch an SDK sealed to A's key, and signs with A's audit key.
    let (ingest, read) = (create_key(&dir_b, "acme", "ingest"), create_key(&dir_b, "acme", "read"));
    let log_path = secret_dir.join("b.log");
    let b = Collector::start_logging_to(&dir_b, std::fs::File::create(&log_path).unwrap());
    let b_audit: serde_json::Value = client().get(format!("{}/v1/audit-key", b.url)).send().unwrap().json().unwrap();
    assert_eq!(b_audit, audit_key);
    let (body, _) = seal_spans(&CollectorKey::from_pem(&pem).unwrap(), "fleet-svc", &[settle_span(7, 1)]);
    let (status, answer) = post_batch(&b.url, &ingest, body);
    assert_eq!((status, answer["status"].as_str()), (200, Some("stored")), "{answer}");
    let (status, detail) = get_json(&format!("{}/api/v1/traces/{}", b.url, "07".repeat(16)), &read);
    assert_eq!(status, 200, "{detail}");
    let spans = detail["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{detail}");
    assert_eq!((spans[0]["name"].as_str(), spans[0]["service_name"].as_str()), (Some("settle"), Some("fleet-svc")));
    assert!(b.terminate().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("PRIVATE") && never.iter().all(|s| !log.contains(s.as_str())), "{log}");

    for d in [dir_a, dir_b, dir_c, dir_d, secret_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
