//! eventlib's urlencoded form, decoded strictly (issue 17 follow-up).

use super::{bad, IngestError};

/// `application/x-www-form-urlencoded` pairs (WHATWG URL, 5.1: `&`
/// separated, split at the first `=`, `+` is a space, then percent-decoded),
/// each key and value strictly UTF-8: bytes that are not are a 400 naming
/// the pair, key or value, and `place` (`query string` or `body`), never
/// rewritten to U+FFFD (issue 17 follow-up).
pub fn pairs(input: &[u8], place: &str) -> Result<Vec<(String, String)>, IngestError> {
    let decode = |raw: &[u8], what: &dyn Fn() -> String| -> Result<String, IngestError> {
        let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
        String::from_utf8(bytes).map_err(|_| {
            bad(format!(
                "/event/log {place}: {} is not UTF-8 once percent-decoded ({:?})",
                what(),
                String::from_utf8_lossy(raw)
            ))
        })
    };
    let mut out = Vec::new();
    for (i, pair) in input.split(|&b| b == b'&').filter(|p| !p.is_empty()).enumerate() {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(k, &|| format!("the key of pair {}", i + 1))?;
        let value = decode(v, &|| format!("the value of {key:?}"))?;
        out.push((key, value));
    }
    Ok(out)
}
