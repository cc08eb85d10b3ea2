//! Files only the collector's user may read: the data dir (0700) and the SQLite database with its
//! WAL and shared-memory files (0600). They hold decrypted spans and API-key hashes; created with
//! the default umask they were world-readable (0755 / 0644). Looser modes found at start are
//! tightened, with a warning, rather than refused: the fix is the same either way, and refusing
//! would turn an upgrade into an outage. (Private key files are refused instead, see `keys`: a key
//! that was readable may have been read, and needs rotating, not just a chmod.)

use std::path::{Path, PathBuf};

/// Creates `dir` if needed and makes it 0700.
pub fn dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    tighten(dir, 0o700)
}

/// Creates the database file 0600 if it does not exist (SQLite gives its `-wal` and `-shm` files
/// the database file's mode), and tightens all three if they exist with looser modes.
pub fn sqlite_files(db: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if !db.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(db)
                .map_err(|e| format!("{}: {e}", db.display()))?;
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            tighten(&p, 0o600)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`, created (or truncated) readable only by the collector's user, and
/// synced: key files, the audit key, key bundles. A file that existed keeps its mode on open, so it
/// is set to 0600 too.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode() & 0o777;
    if current & !mode != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{current:o}"), "readable by others; setting {mode:o}");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: cannot set mode {mode:o}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: u32) -> Result<(), String> {
    Ok(())
}
