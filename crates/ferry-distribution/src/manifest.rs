//! Manifest media types and reading the references out of raw manifest bytes. The bytes
//! themselves are never re-serialised: this only reads them.

use serde::Deserialize;

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Legacy artifact manifest (OCI 1.1 release candidates).
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// Docker schema 1, signed (not supported: deprecated, and ECR no longer accepts pushes).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest type, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.artifact.manifest.v1+json";

/// Largest manifest accepted (ECR's limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Most children or layers one manifest may list.
pub const MAX_REFERENCES: usize = 1000;

/// Layer media types that must not be pushed to another registry.
const NON_DISTRIBUTABLE: &[&str] = &[
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    #[serde(default)]
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// External URLs (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Artifact type (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// A foreign or non-distributable layer: it has `urls`, or a media type that forbids
    /// redistribution. Such layers are left where they are.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || NON_DISTRIBUTABLE.contains(&self.media_type.as_str())
    }
}

/// What a manifest refers to.
// A `Parsed` lives only while one manifest is walked, never in a collection: the size
// difference (which depends on serde_json's map type under the features in use) costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An index or manifest list: child manifests.
    Index {
        /// Children.
        manifests: Vec<Descriptor>,
        /// Subject (an index can be a referrer too).
        subject: Option<Descriptor>,
    },
    /// An image or artifact manifest: config and layers.
    Image {
        /// Config blob (absent for legacy artifact manifests).
        config: Option<Descriptor>,
        /// Layers (or `blobs` of a legacy artifact manifest).
        layers: Vec<Descriptor>,
        /// Subject, when this manifest is a referrer.
        subject: Option<Descriptor>,
    },
}

impl Parsed {
    /// The subject, if this manifest is a referrer.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Parsed::Index { subject, .. } | Parsed::Image { subject, .. } => subject.as_ref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// The media type of a manifest: its own `mediaType`, else the one the registry sent,
/// else inferred from its shape.
pub fn media_type_of(bytes: &[u8], content_type: Option<&str>) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Peek {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let peek: Peek = serde_json::from_slice(bytes).ok()?;
    if let Some(m) = peek.media_type.filter(|m| !m.is_empty()) {
        return Some(m);
    }
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    if let Some(c) = ct {
        return Some(c.to_string());
    }
    if peek.manifests.is_some() {
        Some(OCI_INDEX.to_string())
    } else if peek.config.is_some() {
        Some(OCI_MANIFEST.to_string())
    } else {
        None
    }
}

/// Read a manifest's references. Refuses schema 1, unknown shapes and more than
/// [`MAX_REFERENCES`] children or layers.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    if raw.schema_version == Some(1) || raw.media_type.as_deref() == Some(DOCKER_SCHEMA1_SIGNED) {
        return Err(
            "Docker schema 1 manifests are not supported (deprecated; ECR refuses them)".into(),
        );
    }
    if let Some(m) = raw.manifests {
        if m.len() > MAX_REFERENCES {
            return Err(format!(
                "index lists {} manifests, over the limit of {MAX_REFERENCES}",
                m.len()
            ));
        }
        return Ok(Parsed::Index {
            manifests: m,
            subject: raw.subject,
        });
    }
    let layers = raw.layers.or(raw.blobs);
    if raw.config.is_none() && layers.is_none() {
        return Err(
            "neither an index nor an image manifest (no manifests, config or layers)".into(),
        );
    }
    let layers = layers.unwrap_or_default();
    if layers.len() > MAX_REFERENCES {
        return Err(format!(
            "manifest lists {} layers, over the limit of {MAX_REFERENCES}",
            layers.len()
        ));
    }
    Ok(Parsed::Image {
        config: raw.config,
        layers,
        subject: raw.subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    #[test]
    fn parses_an_index() {
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d(1)
        );
        match parse(j.as_bytes()).expect("parse") {
            Parsed::Index { manifests, subject } => {
                assert_eq!(manifests.len(), 1);
                assert!(subject.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            media_type_of(j.as_bytes(), None).as_deref(),
            Some(OCI_INDEX)
        );
    }

    #[test]
    fn parses_a_referrer_with_foreign_layer() {
        let j = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.example+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":5,"urls":["https://x"]}},
                      {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":5}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7}}}}"#,
            d(1),
            d(2),
            d(3),
            d(4)
        );
        let p = parse(j.as_bytes()).expect("parse");
        assert_eq!(p.subject().map(|s| s.digest.to_string()), Some(d(4)));
        match p {
            Parsed::Image { layers, .. } => {
                assert!(layers[0].is_foreign());
                assert!(!layers[1].is_foreign());
            }
            other => panic!("{other:?}"),
        }
        // No mediaType in the body: the header, then the shape, decide.
        assert_eq!(
            media_type_of(j.as_bytes(), Some(DOCKER_MANIFEST)).as_deref(),
            Some(DOCKER_MANIFEST)
        );
        assert_eq!(
            media_type_of(j.as_bytes(), Some("application/json")).as_deref(),
            Some(OCI_MANIFEST)
        );
    }

    #[test]
    fn refuses_bad_manifests() {
        assert!(parse(b"{}").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        let many: Vec<String> = (0..1001)
            .map(|_| format!(r#"{{"mediaType":"x","digest":"{}","size":1}}"#, d(0)))
            .collect();
        let j = format!(r#"{{"manifests":[{}]}}"#, many.join(","));
        assert!(parse(j.as_bytes()).unwrap_err().contains("over the limit"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in proptest::prelude::any::<Vec<u8>>()) {
            let _ = parse(&s);
            let _ = media_type_of(&s, None);
        }
    }
}
