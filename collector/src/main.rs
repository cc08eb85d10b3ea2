//! `tracex-collector`: serve, manage keys, create API keys.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracex_collector::civil::rfc3339;
use tracex_collector::config::{Config, LogFormat};
use tracex_collector::keys::KeyRing;
use tracex_collector::store::KeyScope;

/// mimalloc rather than glibc's malloc: serving a 10,000-span trace spent a quarter of its CPU in
/// malloc and free (decoded spans, their attributes, the answer) and fell from 52 to 35–43 ms of
/// CPU with nothing else changed (docs/benchmarks.md). Without transparent huge pages:
/// [`tracex_collector::allocator`].
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tracex-collector",
    version,
    about = "tracex collector: decrypts, validates and stores end-to-end encrypted traces"
)]
struct Cli {
    /// TOML file with settings (flags and TRACEX_* variables override it).
    #[arg(long, global = true, env = "TRACEX_CONFIG")]
    config: Option<PathBuf>,
    /// Keys and the embedded database live here [default: ./tracex-data].
    #[arg(long, global = true, env = "TRACEX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite:///path/file.db (default: <data-dir>/tracex.db) or postgres://…
    #[arg(long, global = true, env = "TRACEX_DATABASE_URL")]
    database_url: Option<String>,
    /// postgres://… of a read replica of the database: queries read there.
    #[arg(long, global = true, env = "TRACEX_DATABASE_READ_URL")]
    database_read_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Serve {
        /// Address to listen on [default: 127.0.0.1:3002].
        #[arg(long, env = "TRACEX_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Also serve OTLP/gRPC (TraceService/Export) here, e.g. 127.0.0.1:4317 [default: off].
        #[arg(long, env = "TRACEX_OTLP_GRPC_LISTEN")]
        otlp_grpc_listen: Option<std::net::SocketAddr>,
        /// Log format.
        #[arg(long, env = "TRACEX_LOG_FORMAT", value_enum)]
        log_format: Option<LogFormat>,
        /// Browser origin allowed to send batches (CORS), repeatable; `*` for any [default: none].
        #[arg(long = "cors-origin", env = "TRACEX_CORS_ORIGINS", value_delimiter = ',')]
        cors_origins: Vec<String>,
        /// Days spans and their statistics are kept; 0 keeps everything [default: 30].
        #[arg(long, env = "TRACEX_RETENTION_DAYS")]
        retention_days: Option<u32>,
        /// Forward stored spans to this OTLP/HTTP receiver, e.g. http://127.0.0.1:4318 (docs/http-api.md,
        /// "OTLP export") [default: off].
        #[arg(long, env = "TRACEX_EXPORT_OTLP")]
        export_otlp: Option<String>,
        /// A header sent with every export request, `name=value` (e.g. `authorization=Bearer …`),
        /// repeatable.
        #[arg(long = "export-otlp-header", value_parser = header_arg)]
        export_otlp_headers: Vec<(String, String)>,
    },
    /// Show or rotate the collector key.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        action: ApikeyAction,
    },
    /// Check the audit trail (docs/audit.md).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// How long each project's spans are kept: set in the store, so every collector sharing it
    /// applies the setting at its next retention pass, no restart needed.
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
}

#[derive(Subcommand)]
enum RetentionAction {
    /// Keep `project`'s spans (and their statistics) this many days; 0 keeps everything. Over the
    /// config's `retention_days` and `[retention_days_by_project]`.
    Set {
        /// The project.
        project: String,
        /// Days to keep, or 0 for ever.
        days: u32,
    },
    /// Remove `project`'s setting: the config's retention applies to it again.
    Clear {
        /// The project.
        project: String,
    },
    /// Print each project's retention and where it comes from.
    Show,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the log from the store and check every leaf, span row and checkpoint; names each
    /// batch and span altered, deleted or inserted. Exits 1 when anything is wrong.
    Verify {
        /// A checkpoint (signed note) kept elsewhere, e.g. by a witness: the log must extend it.
        /// Repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<std::path::PathBuf>,
        /// Count span rows that name no leaf instead of reporting them (a store upgraded from a
        /// version without the log holds such rows).
        #[arg(long)]
        allow_unlogged: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print the public key (PEM) and its fingerprint.
    Show,
    /// Add a new key and make it current; older keys still decrypt.
    Rotate,
    /// Write every private key (the RSA ring and the audit key) as one bundle encrypted under a
    /// passphrase, for the other collectors of a fleet (`keys import`).
    Export {
        /// Write the bundle here (mode 0600) instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Take in a bundle from `keys export`: its RSA keys join this collector's ring (its current
    /// key becomes current) and its audit key becomes this collector's. A running collector picks
    /// new RSA keys up by itself; restart it for the audit key.
    Import {
        /// The bundle file (`-`: stdin).
        bundle: PathBuf,
        /// Replace this collector's own, different audit key (its past checkpoints stay signed by it).
        #[arg(long)]
        replace_audit_key: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Where the bundle's passphrase comes from: never a command-line argument (process listings and
/// shell history would show it).
#[derive(clap::Args)]
struct PassphraseArgs {
    /// Read the passphrase from this file (its first line) [default: the TRACEX_KEYS_PASSPHRASE
    /// environment variable].
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let text = match &self.passphrase_file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
            None => std::env::var("TRACEX_KEYS_PASSPHRASE")
                .map_err(|_| "set TRACEX_KEYS_PASSPHRASE or pass --passphrase-file".to_owned())?,
        };
        let text = zeroize::Zeroizing::new(text);
        Ok(zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_owned()))
    }
}

#[derive(Subcommand)]
enum ApikeyAction {
    /// Create a key; it is printed once and stored hashed.
    Create {
        /// Project the key belongs to.
        #[arg(long)]
        project: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value = "ingest")]
        scope: ScopeArg,
    },
    /// List keys (ids, never secrets): id, project, scope, created, revoked.
    List {
        /// Only this project's keys.
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a key: the next request with it gets 401. Takes the key's id or the whole key.
    Revoke {
        /// The key id (the 12 hex digits after `trx_<scope>_`), or the whole key.
        key: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    Ingest,
    Read,
}

/// "kept 30 days" / "kept for ever".
fn keeps(days: u32) -> String {
    match days {
        0 => "kept for ever".into(),
        1 => "kept 1 day".into(),
        d => format!("kept {d} days"),
    }
}

/// `name=value`.
fn header_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("{s:?}: expected name=value"))
}

fn config(cli: &Cli) -> Result<Config, String> {
    let mut c = match &cli.config {
        Some(path) => Config::from_toml_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &cli.data_dir {
        c.data_dir.clone_from(d);
    }
    if let Some(u) = &cli.database_url {
        c.database_url = Some(u.clone());
    }
    if let Some(u) = &cli.database_read_url {
        c.database_read_url = Some(u.clone());
    }
    Ok(c)
}

fn main() -> std::process::ExitCode {
    tracex_collector::allocator::disable_huge_pages();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracex_collector::logs::say(&mut std::io::stderr(), &format!("tracex-collector: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> Result<(), String> {
    let mut cfg = config(&cli)?;
    match cli.command {
        Command::Serve {
            listen,
            otlp_grpc_listen,
            log_format,
            cors_origins,
            retention_days,
            export_otlp,
            export_otlp_headers,
        } => {
            if let Some(url) = export_otlp {
                cfg.export.url = Some(url);
            }
            cfg.export.headers.extend(export_otlp_headers);
            if let Some(d) = retention_days {
                cfg.retention_days = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(g) = otlp_grpc_listen {
                cfg.otlp_grpc_listen = Some(g);
            }
            if let Some(f) = log_format {
                cfg.log_format = f;
            }
            if !cors_origins.is_empty() {
                cfg.cors_allowed_origins = cors_origins;
            }
            tracex_collector::logs::init(cfg.log_format);
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let collector = tracex_collector::Collector::start(cfg).await?;
                let addr = collector.local_addr().map_err(|e| e.to_string())?;
                tracing::info!(%addr, "listening");
                tracex_collector::logs::say(
                    &mut std::io::stdout(),
                    &format!("tracex-collector listening on http://{addr}"),
                );
                if let Some(grpc) = collector.otlp_grpc_addr().transpose().map_err(|e| e.to_string())? {
                    tracing::info!(%grpc, "OTLP/gRPC listening");
                    tracex_collector::logs::say(
                        &mut std::io::stdout(),
                        &format!("tracex-collector OTLP/gRPC listening on http://{grpc}"),
                    );
                }
                collector.serve(tracex_collector::shutdown_signal()).await
            })
        }
        Command::Audit { action: AuditAction::Verify { checkpoints, allow_unlogged } } => {
            let mut saved = Vec::new();
            for path in &checkpoints {
                saved.push(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
            }
            let signer =
                tracex_collector::audit::signer::AuditSigner::load(&cfg.keys_dir()).map_err(|e| e.to_string())?;
            if signer.is_none() {
                eprintln!("no audit key in {}: checkpoint signatures are not checked", cfg.keys_dir().display());
            }
            let store = tracex_collector::open_store(&cfg)?;
            let opts = tracex_collector::audit::verify::Options {
                key: signer.map(|s| s.verifier().clone()),
                saved_checkpoints: saved,
                retention: cfg.retention().with_store(&*store).map_err(|e| e.to_string())?,
                now_unix_nano: tracex_collector::now_unix_nano(),
                unlogged_ok: allow_unlogged,
            };
            let r = tracex_collector::audit::verify::verify(&*store, &opts).map_err(|e| e.to_string())?;
            for f in &r.findings {
                println!("{f}");
            }
            if r.problems > r.findings.len() as u64 {
                println!("… and {} more", r.problems - r.findings.len() as u64);
            }
            #[allow(clippy::cast_precision_loss, reason = "a rate for people")]
            let rate = r.spans_checked as f64 / r.seconds.max(1e-9);
            println!(
                "{} leaves, {} spans checked ({rate:.0} spans/s), {} expired by retention, {} rows naming no leaf, \
                 {} checkpoints{}: {}",
                r.leaves,
                r.spans_checked,
                r.spans_expired,
                r.rows_unlogged,
                r.checkpoints,
                if r.signatures_checked { "" } else { " (signatures not checked)" },
                if r.problems == 0 { "OK".to_owned() } else { format!("{} problems", r.problems) },
            );
            if r.problems == 0 {
                Ok(())
            } else {
                Err(format!("the audit trail does not verify: {} problems", r.problems))
            }
        }
        Command::Keys { action } => {
            let dir = cfg.keys_dir();
            let ring = match action {
                KeysAction::Show => KeyRing::load_or_create(&dir),
                KeysAction::Rotate => KeyRing::rotate(&dir),
                KeysAction::Export { out, passphrase } => {
                    let bundle =
                        tracex_collector::key_bundle::export(&dir, &passphrase.read()?).map_err(|e| e.to_string())?;
                    match out {
                        Some(path) => tracex_collector::private::write_private_file(&path, bundle.as_bytes())
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                        None => print!("{bundle}"),
                    }
                    return Ok(());
                }
                KeysAction::Import { bundle, replace_audit_key, passphrase } => {
                    let text = if bundle.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
                    } else {
                        std::fs::read_to_string(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?
                    };
                    let done =
                        tracex_collector::key_bundle::import(&dir, &text, &passphrase.read()?, replace_audit_key)
                            .map_err(|e| e.to_string())?;
                    println!("keys added: {}", done.keys_added);
                    if let Some(audit) = &done.audit_key {
                        println!("audit key: {audit}");
                    }
                    KeyRing::load_or_create(&dir)
                }
            }
            .map_err(|e| e.to_string())?;
            let key = ring.current();
            print!("{}", key.public_pem);
            println!("fingerprint: {}", key.key_id.to_hex());
            println!("keys in ring: {}", ring.len());
            Ok(())
        }
        Command::Retention { action } => {
            let store = tracex_collector::open_store(&cfg)?;
            match action {
                RetentionAction::Set { project, days } => {
                    if project.trim().is_empty() {
                        return Err("the project must not be empty".into());
                    }
                    store.set_retention_override(&project, Some(days)).map_err(|e| e.to_string())?;
                    eprintln!("project {project:?}: {}; applied at the next retention pass", keeps(days));
                }
                RetentionAction::Clear { project } => {
                    if !store.set_retention_override(&project, None).map_err(|e| e.to_string())? {
                        return Err(format!("project {project:?} has no retention setting of its own"));
                    }
                    eprintln!(
                        "project {project:?}: the config's retention applies again ({})",
                        keeps(cfg.retention().days(&project))
                    );
                }
                RetentionAction::Show => {
                    let config = cfg.retention();
                    let set: std::collections::BTreeMap<String, u32> =
                        store.retention_overrides().map_err(|e| e.to_string())?.into_iter().collect();
                    let mut projects: std::collections::BTreeSet<String> =
                        store.project_names().map_err(|e| e.to_string())?.into_iter().collect();
                    projects.extend(config.by_project.keys().cloned());
                    projects.extend(set.keys().cloned());
                    println!("default: {}", keeps(config.default_days));
                    for p in &projects {
                        let (days, from) = match (set.get(p), config.by_project.get(p)) {
                            (Some(d), _) => (*d, "set"),
                            (None, Some(d)) => (*d, "config"),
                            (None, None) => (config.default_days, "default"),
                        };
                        println!("{p}: {} ({from})", keeps(days));
                    }
                }
            }
            Ok(())
        }
        Command::Apikey { action: ApikeyAction::Create { project, scope } } => {
            if project.trim().is_empty() {
                return Err("--project must not be empty".into());
            }
            let scope = match scope {
                ScopeArg::Ingest => KeyScope::Ingest,
                ScopeArg::Read => KeyScope::Read,
            };
            let store = tracex_collector::open_store(&cfg)?;
            let new = tracex_collector::auth::generate(&project, scope, tracex_collector::now_unix_nano())?;
            store.insert_api_key(&new.record).map_err(|e| e.to_string())?;
            println!("{}", new.key);
            eprintln!(
                "created {} key {} for project {project:?}; it is shown only once",
                scope.as_str(),
                new.record.id
            );
            Ok(())
        }
        Command::Apikey { action: ApikeyAction::List { project } } => {
            let store = tracex_collector::open_store(&cfg)?;
            let keys = store.list_api_keys().map_err(|e| e.to_string())?;
            println!("{:<12}  {:<24}  {:<6}  {:<20}  revoked", "id", "project", "scope", "created");
            for k in keys.iter().filter(|k| project.as_ref().is_none_or(|p| *p == k.project)) {
                let revoked = k.revoked_at_unix_nano.map_or_else(|| "-".to_owned(), rfc3339);
                println!(
                    "{:<12}  {:<24}  {:<6}  {:<20}  {revoked}",
                    k.id,
                    k.project,
                    k.scope.as_str(),
                    rfc3339(k.created_at_unix_nano)
                );
            }
            Ok(())
        }
        Command::Apikey { action: ApikeyAction::Revoke { key } } => {
            let id =
                tracex_collector::auth::key_id(&key).ok_or("not a key id or key: expected 12 hex digits or trx_…")?;
            let store = tracex_collector::open_store(&cfg)?;
            match store.api_key(id).map_err(|e| e.to_string())? {
                None => Err(format!("no API key {id}")),
                Some(_)
                    if store.revoke_api_key(id, tracex_collector::now_unix_nano()).map_err(|e| e.to_string())? =>
                {
                    eprintln!("revoked API key {id}; requests with it now get 401");
                    Ok(())
                }
                Some(_) => Err(format!("API key {id} is already revoked")),
            }
        }
    }
}
