//! Platform selection (`rules[].platforms`): which entries of an image index a copy keeps,
//! and the new index it writes listing only those.
//!
//! - A listed `os/architecture` matches an entry of that `os` and `architecture` whose
//!   `variant` is absent or the architecture's default (`arm64`: `v8`, `arm`: `v7`,
//!   `amd64`: `v1`); a listed `os/architecture/variant` requires that variant.
//! - An attestation entry (annotation `vnd.docker.reference.type: attestation-manifest`,
//!   platform `unknown/unknown`) is kept exactly when its `vnd.docker.reference.digest`
//!   names a kept entry. Any other entry without a matching `platform` is dropped.
//! - The index written is the source's JSON document with only `manifests` changed: every
//!   other field, every kept entry's fields and their key order stay as they were
//!   (serde_json's `preserve_order`). It is re-serialised compactly (no whitespace, numbers
//!   and string escapes as serde_json writes them), so its digest is its own even when the
//!   source was pretty-printed.
//! - When every entry is kept, or the manifest is not an index, nothing is written anew:
//!   the source's bytes are copied as they are.

use bytes::Bytes;
use serde_json::Value;

use super::budget::Held;
use super::{Copier, Job};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Parsed};
use crate::registry::{RawManifest, Repo};

/// The annotation naming what a Docker (buildx) reference entry of an index is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the entry a Docker attestation entry is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// [`REFERENCE_TYPE`] of an attestation entry.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// The index a platform selection writes in place of the source's.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The new index: the source's document with only the kept `manifests`.
    pub raw: RawManifest,
    /// The platforms of the kept entries (`os/architecture[/variant]`), each once, in the
    /// index's order; attestation entries are not named.
    pub kept: Vec<String>,
}

/// Why an index could not be filtered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// The bytes are not a manifest Ferry reads.
    Invalid(String),
    /// No entry matches a listed platform; `available` names the index's platforms.
    Unmatched {
        /// The platforms the index lists (`os/architecture[/variant]`), each once.
        available: Vec<String>,
    },
}

/// One listed platform, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wanted<'a> {
    os: &'a str,
    architecture: &'a str,
    variant: Option<&'a str>,
}

impl<'a> Wanted<'a> {
    /// `os/architecture[/variant]`; anything else matches nothing (the config's
    /// validation refuses it before a copy sees it).
    fn parse(platform: &'a str) -> Option<Wanted<'a>> {
        let mut parts = platform.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next();
        if parts.next().is_some() || variant == Some("") {
            return None;
        }
        Some(Wanted {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an index entry's `platform` object matches.
    fn matches(&self, platform: &Value) -> bool {
        let field = |name: &str| platform.get(name).and_then(Value::as_str);
        if field("os") != Some(self.os) || field("architecture") != Some(self.architecture) {
            return false;
        }
        let variant = field("variant").filter(|v| !v.is_empty());
        match self.variant {
            Some(want) => variant == Some(want),
            None => variant.is_none() || variant == default_variant(self.architecture),
        }
    }
}

/// The variant an architecture means when none is named (as container runtimes read it).
fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        "amd64" => Some("v1"),
        _ => None,
    }
}

/// Whether the platform `os/architecture[/variant]` of an index entry (its `platform`
/// object) is selected by `platforms` (as [`select`] reads them).
pub fn platform_matches(platforms: &[String], platform: &Value) -> bool {
    platforms
        .iter()
        .filter_map(|p| Wanted::parse(p))
        .any(|w| w.matches(platform))
}

/// `os/architecture[/variant]` of an entry's `platform` object, if it names both.
fn platform_name(platform: &Value) -> Option<String> {
    let field = |name: &str| {
        platform
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (os, architecture) = (field("os")?, field("architecture")?);
    Some(match field("variant") {
        Some(v) => format!("{os}/{architecture}/{v}"),
        None => format!("{os}/{architecture}"),
    })
}

/// An entry's annotation `key`.
fn annotation<'v>(entry: &'v Value, key: &str) -> Option<&'v str> {
    entry.get("annotations")?.get(key)?.as_str()
}

/// Whether an entry is a Docker attestation entry.
fn is_attestation(entry: &Value) -> bool {
    annotation(entry, REFERENCE_TYPE) == Some(ATTESTATION_MANIFEST)
}

/// The index to write for `platforms` of the source manifest `raw`: `Ok(None)` when the
/// source is to be copied as it is (it is not an index, `platforms` is empty, or every
/// entry is kept); [`SelectError::Unmatched`] when no entry matches.
pub fn select(raw: &RawManifest, platforms: &[String]) -> Result<Option<Selection>, SelectError> {
    if platforms.is_empty() {
        return Ok(None);
    }
    // The engine's reading first: schema 1, shapes and limits are refused as for any copy.
    match manifest::parse(&raw.bytes).map_err(SelectError::Invalid)? {
        Parsed::Image { .. } => return Ok(None),
        Parsed::Index { .. } => {}
    }
    let mut doc: Value = serde_json::from_slice(&raw.bytes)
        .map_err(|e| SelectError::Invalid(format!("not a manifest: {e}")))?;
    let entries = match doc.get_mut("manifests") {
        Some(Value::Array(entries)) => std::mem::take(entries),
        _ => return Err(SelectError::Invalid("`manifests` is not a list".into())),
    };
    let total = entries.len();
    let mut kept_digests = Vec::new();
    let mut kept_names: Vec<String> = Vec::new();
    let mut available: Vec<String> = Vec::new();
    for entry in entries.iter().filter(|e| !is_attestation(e)) {
        let Some(platform) = entry.get("platform") else {
            continue;
        };
        let name = platform_name(platform);
        if let Some(n) = &name
            && !available.contains(n)
        {
            available.push(n.clone());
        }
        if platform_matches(platforms, platform) {
            if let Some(d) = entry.get("digest").and_then(Value::as_str) {
                kept_digests.push(d.to_string());
            }
            if let Some(n) = name
                && !kept_names.contains(&n)
            {
                kept_names.push(n);
            }
        }
    }
    if kept_digests.is_empty() {
        return Err(SelectError::Unmatched { available });
    }
    let kept: Vec<Value> = entries
        .into_iter()
        .filter(|e| {
            let about = if is_attestation(e) {
                annotation(e, REFERENCE_DIGEST)
            } else {
                e.get("digest").and_then(Value::as_str)
            };
            about.is_some_and(|d| kept_digests.iter().any(|k| k == d))
        })
        .collect();
    if kept.len() == total {
        return Ok(None);
    }
    doc["manifests"] = Value::Array(kept);
    let bytes = Bytes::from(
        serde_json::to_vec(&doc).map_err(|e| SelectError::Invalid(format!("re-serialise: {e}")))?,
    );
    Ok(Some(Selection {
        raw: RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type: raw.media_type.clone(),
        },
        kept: kept_names,
    }))
}

/// [`select`] for the source manifest `raw` of `repo`, its failures as the engine's errors:
/// [`Error::NoMatchingPlatform`] when nothing matches, [`Error::InvalidManifest`] when it
/// cannot be read.
pub fn select_in(
    repo: &Repo,
    raw: &RawManifest,
    platforms: &[String],
) -> Result<Option<Selection>, Error> {
    select(raw, platforms).map_err(|e| match e {
        SelectError::Invalid(reason) => Error::InvalidManifest {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            reference: raw.digest.to_string(),
            reason,
        },
        SelectError::Unmatched { available } => Error::NoMatchingPlatform {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            digest: raw.digest.clone(),
            wanted: platforms.to_vec(),
            available,
        },
    })
}

impl Copier {
    /// The root manifest a copy writes: the source's `root`, or, when the options select
    /// platforms and that drops entries, the filtered index in its place (held under the
    /// source's reservation; the job notes the source's digest and the platforms kept).
    pub(crate) fn select_platforms(&self, job: &Job, root: Held) -> Result<Held, Error> {
        let platforms = &self.options().platforms;
        match select_in(&job.src, &root.raw, platforms)? {
            None => Ok(root),
            Some(selection) => {
                tracing::info!(
                    source = %root.raw.digest,
                    written = %selection.raw.digest,
                    kept = ?selection.kept,
                    "platforms selected: a new index is written"
                );
                let _ = job.filtered.set((root.raw.digest.clone(), selection.kept));
                Ok(root.replaced(selection.raw))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    fn raw(body: &str) -> RawManifest {
        let bytes = Bytes::from(body.to_string());
        RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type: manifest::OCI_INDEX.to_string(),
        }
    }

    fn platforms(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn entry(n: u8, platform: &str) -> String {
        let parts: Vec<&str> = platform.split('/').collect();
        let variant = parts
            .get(2)
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{}","os":"{}"{variant}}}}}"#,
            manifest::OCI_MANIFEST,
            d(n),
            100 + u32::from(n),
            parts[1],
            parts[0]
        )
    }

    fn attestation(n: u8, about: u8) -> String {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":5,"annotations":{{"vnd.docker.reference.digest":"{}","vnd.docker.reference.type":"attestation-manifest"}},"platform":{{"architecture":"unknown","os":"unknown"}}}}"#,
            manifest::OCI_MANIFEST,
            d(n),
            d(about)
        )
    }

    /// An OCI index of `entries`, with annotations of its own out of alphabetical order.
    fn index_of(entries: &[String]) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}],"annotations":{{"z":"last","a":"first"}}}}"#,
            manifest::OCI_INDEX,
            entries.join(",")
        )
    }

    /// A buildx-shaped index: amd64, arm64/v8, arm/v7, and an attestation for each of
    /// the first two.
    fn index() -> String {
        index_of(&[
            entry(1, "linux/amd64"),
            entry(2, "linux/arm64/v8"),
            entry(3, "linux/arm/v7"),
            attestation(11, 1),
            attestation(12, 2),
        ])
    }

    fn plat(json: &str) -> Value {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn a_platform_without_variant_matches_none_or_the_default_one() {
        let arm64 = platforms(&["linux/arm64"]);
        assert!(platform_matches(
            &arm64,
            &plat(r#"{"os":"linux","architecture":"arm64"}"#)
        ));
        assert!(platform_matches(
            &arm64,
            &plat(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#)
        ));
        assert!(!platform_matches(
            &arm64,
            &plat(r#"{"os":"linux","architecture":"arm64","variant":"v9"}"#)
        ));
        let v8 = platforms(&["linux/arm64/v8"]);
        assert!(platform_matches(
            &v8,
            &plat(r#"{"os":"linux","architecture":"arm64","variant":"v8"}"#)
        ));
        assert!(
            !platform_matches(&v8, &plat(r#"{"os":"linux","architecture":"arm64"}"#)),
            "a variant named is required"
        );
        assert!(!platform_matches(
            &arm64,
            &plat(r#"{"os":"windows","architecture":"arm64"}"#)
        ));
        assert!(!platform_matches(
            &platforms(&["linux/amd64"]),
            &plat(r#"{"os":"unknown","architecture":"unknown"}"#)
        ));
        assert!(!platform_matches(
            &platforms(&["linux", "linux/amd64/v2/x"]),
            &plat(r#"{"os":"linux","architecture":"amd64"}"#)
        ));
    }

    #[test]
    fn keeps_the_selected_entries_and_their_attestations_and_nothing_else() {
        let source = raw(&index());
        let sel = select(&source, &platforms(&["linux/amd64"]))
            .expect("select")
            .expect("filtered");
        let expected = index_of(&[entry(1, "linux/amd64"), attestation(11, 1)]);
        // Bytes in, bytes out: every other field and every key order as in the source.
        assert_eq!(std::str::from_utf8(&sel.raw.bytes).unwrap(), expected);
        assert_eq!(sel.raw.digest, Digest::of(expected.as_bytes()));
        assert_ne!(sel.raw.digest, source.digest);
        assert_eq!(sel.raw.media_type, source.media_type);
        assert_eq!(sel.kept, vec!["linux/amd64".to_string()]);

        let two = select(&source, &platforms(&["linux/arm64", "linux/arm/v7"]))
            .expect("select")
            .expect("filtered");
        let expected = index_of(&[
            entry(2, "linux/arm64/v8"),
            entry(3, "linux/arm/v7"),
            attestation(12, 2),
        ]);
        assert_eq!(std::str::from_utf8(&two.raw.bytes).unwrap(), expected);
        assert_eq!(two.kept, platforms(&["linux/arm64/v8", "linux/arm/v7"]));
    }

    #[test]
    fn a_pretty_printed_docker_list_is_rewritten_compactly() {
        let body = format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"manifests\": [\n    {},\n    {}\n  ]\n}}\n",
            manifest::DOCKER_LIST,
            entry(1, "linux/amd64"),
            entry(2, "linux/arm64"),
        );
        let mut source = raw(&body);
        source.media_type = manifest::DOCKER_LIST.to_string();
        let sel = select(&source, &platforms(&["linux/arm64/v8"]));
        assert_eq!(
            sel.err(),
            Some(SelectError::Unmatched {
                available: platforms(&["linux/amd64", "linux/arm64"])
            }),
            "arm64 without a variant does not name v8 explicitly"
        );
        let sel = select(&source, &platforms(&["linux/arm64"]))
            .expect("select")
            .expect("filtered");
        let expected = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            manifest::DOCKER_LIST,
            entry(2, "linux/arm64"),
        );
        assert_eq!(std::str::from_utf8(&sel.raw.bytes).unwrap(), expected);
        assert_eq!(sel.raw.media_type, manifest::DOCKER_LIST);
    }

    #[test]
    fn copied_as_it_is_when_nothing_is_dropped_or_it_is_no_index() {
        let source = raw(&index());
        let all = platforms(&["linux/amd64", "linux/arm64", "linux/arm"]);
        assert!(
            matches!(select(&source, &all), Ok(None)),
            "every entry kept"
        );
        assert!(matches!(select(&source, &[]), Ok(None)), "no selection");
        let image = raw(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{}","size":2}},"layers":[]}}"#,
            manifest::OCI_MANIFEST,
            d(9)
        ));
        assert!(
            matches!(select(&image, &platforms(&["linux/s390x"])), Ok(None)),
            "a single-platform manifest is copied unchanged"
        );
    }

    #[test]
    fn no_match_names_what_the_index_has() {
        let source = raw(&index());
        assert_eq!(
            select(&source, &platforms(&["linux/s390x", "windows/amd64"])).err(),
            Some(SelectError::Unmatched {
                available: platforms(&["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])
            })
        );
        // An attestation alone never counts as a match.
        assert!(matches!(
            select(&source, &platforms(&["unknown/unknown"])),
            Err(SelectError::Unmatched { .. })
        ));
        assert!(matches!(
            select(&raw("{}"), &platforms(&["linux/amd64"])),
            Err(SelectError::Invalid(_))
        ));
    }
}
