//! Embeds the built dashboard (`dashboard/dist`, made by `scripts/build-dashboard.sh`) when the
//! `dashboard` feature is on: writes `$OUT_DIR/dashboard_assets.rs`, a table of every file with its
//! precompressed `.gz`/`.br` twins, each pulled in by `include_bytes!`. Without the feature, or
//! without a build, the table is empty and `/` serves a page saying how to build the dashboard, so
//! the collector builds and tests on a machine without Node. A build script rather than
//! rust-embed/include_dir: those fail to compile when the folder is missing, and `cargo clippy
//! --all-features` must pass on a fresh clone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TRACEX_DASHBOARD_DIST");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("dashboard_assets.rs");
    let mut files = Vec::new();
    if std::env::var_os("CARGO_FEATURE_DASHBOARD").is_some() {
        let dist = std::env::var_os("TRACEX_DASHBOARD_DIST").map_or_else(
            || PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../dashboard/dist"),
            PathBuf::from,
        );
        // A folder: cargo rescans it all, so a rebuilt dashboard re-embeds.
        println!("cargo:rerun-if-changed={}", dist.display());
        if dist.join("index.html").is_file() {
            collect(&dist, &dist, &mut files);
        } else {
            println!("cargo:warning=feature `dashboard` without {}: run scripts/build-dashboard.sh", dist.display());
        }
    }
    files.sort();
    let mut code = String::from("&[\n");
    for (url, path) in &files {
        let twin = |ext: &str| {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            let p = PathBuf::from(p);
            if p.is_file() { format!("Some(include_bytes!({:?}))", p.display().to_string()) } else { "None".into() }
        };
        let _ = writeln!(
            code,
            "    Asset {{ path: {url:?}, raw: include_bytes!({:?}), gzip: {}, brotli: {} }},",
            path.display().to_string(),
            twin(".gz"),
            twin(".br"),
        );
    }
    code.push_str("]\n");
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=writing {}: {e}", out.display());
        std::process::exit(1);
    }
}

/// Every file under `dir` except the compressed twins, as (URL path, file path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if !matches!(path.extension().and_then(|e| e.to_str()), Some("gz" | "br")) {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            files.push((format!("/{rel}"), path));
        }
    }
}
