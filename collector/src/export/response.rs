//! Reads the one answer an OTLP receiver gives: `ExportTraceServiceResponse`.

/// `(rejected_spans, error_message)` of the answer's partial success; `None` if it does not parse.
/// An answer without one (the usual, empty body) is `(0, "")`.
pub(super) fn partial_success(mut b: &[u8]) -> Option<(u64, String)> {
    let mut out = (0, String::new());
    // ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
    while !b.is_empty() {
        let (field, wire) = key(&mut b)?;
        if (field, wire) == (1, 2) {
            let mut inner = len_delimited(&mut b)?;
            // ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
            while !inner.is_empty() {
                match key(&mut inner)? {
                    (1, 0) => out.0 = varint(&mut inner)?,
                    (2, 2) => out.1 = String::from_utf8_lossy(len_delimited(&mut inner)?).into_owned(),
                    (_, wire) => skip(&mut inner, wire)?,
                }
            }
        } else {
            skip(&mut b, wire)?;
        }
    }
    Some(out)
}

fn key(b: &mut &[u8]) -> Option<(u64, u8)> {
    let k = varint(b)?;
    Some((k >> 3, u8::try_from(k & 7).ok()?))
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

fn len_delimited<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = usize::try_from(varint(b)?).ok()?;
    let (head, rest) = (b.get(..n)?, b.get(n..)?);
    *b = rest;
    Some(head)
}

fn skip(b: &mut &[u8], wire: u8) -> Option<()> {
    match wire {
        0 => varint(b).map(drop),
        1 => b.get(8..).map(|r| *b = r),
        2 => len_delimited(b).map(drop),
        5 => b.get(4..).map(|r| *b = r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_truncated_answers() {
        assert_eq!(partial_success(b""), Some((0, String::new())));
        assert_eq!(partial_success(&[0x0a, 0x05, 0x08]), None);
        // An unknown field is skipped.
        assert_eq!(partial_success(&[0x10, 0x01]), Some((0, String::new())));
    }
}
