//! Helpers shared by several fuzz targets (included with `#[path]`).

/// `s` as an RFC 7230 quoted string (`"` and `\` escaped).
pub fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
