//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed statement of a log's size and
//! root hash, as the text of a signed note — the origin (the log's name), the tree size in
//! decimal, the root hash in base64, then optional extension lines.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

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
    /// Extension lines (each non-empty, without its newline).
    pub extensions: Vec<String>,
}

fn fail(why: &str) -> Error {
    Error::Audit(format!("checkpoint: {why}"))
}

impl Checkpoint {
    /// Parses a checkpoint's text (the note's text, ending with a newline).
    pub fn parse(text: &str) -> Result<Self> {
        let body = text.strip_suffix('\n').ok_or_else(|| fail("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| fail("no origin"))?;
        let size = lines.next().ok_or_else(|| fail("no tree size"))?;
        // Decimal without a sign or leading zeros: one spelling per size.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || size.len() > 1 && size.starts_with('0') {
            return Err(fail("the tree size is not a decimal number"));
        }
        let size: u64 = size.parse().map_err(|_| fail("the tree size is out of range"))?;
        let root = B64
            .decode(lines.next().ok_or_else(|| fail("no root hash"))?)
            .map_err(|_| fail("the root hash is not base64"))?;
        let root: Hash = root.try_into().map_err(|_| fail("the root hash is not 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(fail("an empty extension line"));
        }
        Ok(Self { origin: origin.to_owned(), size, root, extensions })
    }

    /// The checkpoint's text: what is signed.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_malformed_text_is_refused() {
        let c =
            Checkpoint { origin: "example.com/log".into(), size: 8, root: [7; 32], extensions: vec!["ext one".into()] };
        let text = c.to_text();
        assert_eq!(text, "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\next one\n");
        assert_eq!(Checkpoint::parse(&text).unwrap(), c);
        for bad in [
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n08\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n-8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n18446744073709551616\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "example.com/log\n8\nBwcH\n",
            "example.com/log\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n",
            "example.com/log\n8\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
