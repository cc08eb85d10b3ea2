//! Log output that can never stop the collector. The collector logs to stderr; when stderr is a
//! full disk or a closed pipe, a failed write must cost a log line, not a thread: the default
//! `fmt` layer reports a failed write with `eprintln!`, which panics when stderr itself is broken,
//! and a panic on the writer thread stopped ingest for good.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::LogFormat;

/// Log lines that could not be written (process-wide: logging starts before the metrics exist).
pub static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Stderr, with failed writes counted and swallowed.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().write_all(buf).is_err() {
            WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Installs the global subscriber: `TRACEX_LOG` filter (default `info`), text or JSON, to [`Stderr`].
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRACEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| Stderr).log_internal_errors(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Prints a line to stdout or stderr for the operator; a closed stream loses the line, nothing else
/// (`println!` panics on a broken pipe).
pub fn say(to: &mut dyn Write, line: &str) {
    let _ = writeln!(to, "{line}");
}
