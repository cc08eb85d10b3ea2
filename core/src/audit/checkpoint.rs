//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed statement of a log's size and
//! root hash, as the text of a signed note — the origin (the log's name), the tree size in
//! decimal, the root hash in base64, then optional extension lines. The collector's first extension
//! line is the time it signed: `time <unix nanoseconds>` — a CT signed tree head carries its time
//! too, and the spec's extension lines are where a log puts what its verifiers need.

use base64ct::{Base64, Encoding as _};

use super::merkle::Hash;
use super::note::{self, VerifierKey};
use crate::error::{Error, Result};

/// A log's signed size and root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name (by convention a schema-less URL).
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
    /// When it was signed, unix nanoseconds: the first extension line, [`TIME_PREFIX`] and the time
    /// in decimal. Checkpoints signed before the collector wrote it have none.
    pub signed_at_unix_nano: Option<u64>,
    /// The other extension lines (each non-empty, without its newline).
    pub extensions: Vec<String>,
}

/// What opens the extension line holding the signing time.
pub const TIME_PREFIX: &str = "time ";

fn fail(why: &str) -> Error {
    Error::Audit(format!("checkpoint: {why}"))
}

impl Checkpoint {
    /// Parses a checkpoint's text (the note's text, ending with a newline).
    pub fn parse(text: &str) -> Result<Self> {
        let body = text.strip_suffix('\n').ok_or_else(|| fail("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| fail("no origin"))?;
        let size = decimal(lines.next().ok_or_else(|| fail("no tree size"))?, "the tree size")?;
        let root = Base64::decode_vec(lines.next().ok_or_else(|| fail("no root hash"))?)
            .map_err(|_| fail("the root hash is not base64"))?;
        let root: Hash = root.try_into().map_err(|_| fail("the root hash is not 32 bytes"))?;
        let mut lines = lines.peekable();
        let signed_at_unix_nano = match lines.peek().and_then(|l| l.strip_prefix(TIME_PREFIX)) {
            Some(time) => {
                let time = decimal(time, "the signing time")?;
                lines.next();
                Some(time)
            }
            None => None,
        };
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(fail("an empty extension line"));
        }
        Ok(Self { origin: origin.to_owned(), size, root, signed_at_unix_nano, extensions })
    }

    /// The checkpoint's text: what is signed.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, Base64::encode_string(&self.root));
        if let Some(time) = self.signed_at_unix_nano {
            out.push_str(TIME_PREFIX);
            out.push_str(&time.to_string());
            out.push('\n');
        }
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Verifies a signed checkpoint `note` by `key` for the log `origin` and parses it.
    pub fn open(note_text: &str, origin: &str, key: &VerifierKey) -> Result<Self> {
        let c = Self::parse(note::open(note_text, key)?)?;
        if c.origin != origin {
            return Err(fail(&format!("signed for the log {:?}, not {origin:?}", c.origin)));
        }
        Ok(c)
    }
}

/// A decimal `u64` without a sign or leading zeros: one spelling per number, so one signed text.
fn decimal(s: &str, what: &str) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 1 && s.starts_with('0') {
        return Err(fail(&format!("{what} is not a decimal number")));
    }
    s.parse().map_err(|_| fail(&format!("{what} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_malformed_text_is_refused() {
        let c = Checkpoint {
            origin: "example.com/log".into(),
            size: 8,
            root: [7; 32],
            signed_at_unix_nano: None,
            extensions: vec!["ext one".into()],
        };
        let text = c.to_text();
        assert_eq!(text, "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next one\n");
        assert_eq!(Checkpoint::parse(&text).unwrap(), c);
        let timed = Checkpoint { signed_at_unix_nano: Some(1_764_000_000_123_456_789), ..c.clone() };
        let text = timed.to_text();
        assert_eq!(
            text,
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 1764000000123456789\next one\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), timed);
        // Only the first extension line is the time; a later one is an opaque extension.
        let late = "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next one\ntime 5\n";
        let late = Checkpoint::parse(late).unwrap();
        assert_eq!((late.signed_at_unix_nano, late.extensions.len()), (None, 2));
        for bad in [
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n08\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n-8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n18446744073709551616\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n8\nBwcH\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n",
            "example.com/log\n8\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime \n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 017\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime -1\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 1.5\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 18446744073709551616\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
