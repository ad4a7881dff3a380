//! The `*` wildcard of ECR's tag-mutability exclusions and signing-rule filters.

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `tag` cannot be overwritten in a repository whose tags are `immutable` (or
/// not), with the exclusion patterns of the `*_WITH_EXCLUSION` modes: an excluded tag
/// is the opposite of the rest.
pub fn tag_immutable(immutable: bool, exclusions: &[String], tag: &str) -> bool {
    immutable != exclusions.iter().any(|p| wildcard(p, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("latest", "latest"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("dev-*", "dev-1"));
        assert!(wildcard("*-rc*", "1.0-rc2"));
        assert!(!wildcard("dev-*", "prod-1"));
        assert!(!wildcard("a*a", "a"));
    }
}
