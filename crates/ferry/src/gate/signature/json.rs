//! Guards run before any signature JSON is parsed: its size and its nesting depth.

use super::Rejection;

/// Deepest nesting of arrays and objects accepted in a signature document (the formats
/// need four levels; serde_json's own limit is 128).
pub(crate) const MAX_JSON_DEPTH: usize = 16;

/// Refuse `bytes` when longer than `limit` or nested deeper than [`MAX_JSON_DEPTH`]
/// (`what` names the document in the message). One pass, no allocation; brackets inside
/// strings do not count.
pub(crate) fn check_shape(bytes: &[u8], limit: usize, what: &str) -> Result<(), Rejection> {
    if bytes.len() > limit {
        return Err(Rejection::Malformed(format!(
            "{what} of {} bytes, more than {limit}",
            bytes.len()
        )));
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(Rejection::Malformed(format!(
                        "{what} nested deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parse `bytes` as `T` after [`check_shape`].
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
    what: &str,
) -> Result<T, Rejection> {
    check_shape(bytes, limit, what)?;
    serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_size_are_capped() {
        assert!(check_shape(br#"{"a":[{"b":"[[[[[[[[[[[[[[[[[[[["}]}"#, 1024, "x").is_ok());
        let deep = "[".repeat(MAX_JSON_DEPTH + 1);
        assert!(matches!(
            check_shape(deep.as_bytes(), 1024, "x"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            check_shape(&[b' '; 11], 10, "x"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            parse::<serde_json::Value>(b"{", 10, "x"),
            Err(Rejection::Malformed(_))
        ));
    }
}
