//! How many bytes a plan's copies will move: ECR's listed sizes where there are any,
//! else the blobs of each image's manifests, each unique blob once per destination
//! registry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};

use super::listing::ListedImage;
use super::plan::{Action, LISTING_CONCURRENCY, PlanItem};
use crate::config::Registry;
use crate::copy::platforms::select;
use crate::copy::{MAX_DEPTH, SharedReads};
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{self, Parsed};
use crate::registry::Repo;
use crate::replicate::Replicator;

/// Bytes the copies will move: ECR sizes when listed, else the blobs of each image's
/// manifests, each unique blob once per destination registry.
pub(super) async fn bytes_to_move(
    replicator: &Replicator,
    shared: &SharedReads,
    source: &Registry,
    items: &[PlanItem],
    images: &[ListedImage],
) -> Result<u64, Error> {
    let client = replicator.copier().client();
    // Listed sizes by digest (one pass: a scan per item would be quadratic at scale).
    let listed: HashMap<&Digest, u64> = images
        .iter()
        .filter_map(|i| i.size.map(|s| (&i.digest, s)))
        .collect();
    let listed_size = |digest: &Digest| listed.get(digest).copied();
    // Each (destination registry, blob) once, kept as 64 bits of a SHA-256 of the pair
    // rather than its strings: at 100,000 images this set is the estimate's whole memory.
    // (Two pairs colliding would undercount one blob of an estimate: at a million pairs,
    // a chance in ten million.)
    let mut seen: HashSet<u64> = HashSet::new();
    let mut first = |registry: &str, digest: &Digest| {
        let hash = Sha256::new()
            .chain_update(registry.as_bytes())
            .chain_update([0u8])
            .chain_update(digest.as_str().as_bytes())
            .finalize();
        let mut key = [0u8; 8];
        key.copy_from_slice(&hash[..8]);
        seen.insert(u64::from_le_bytes(key))
    };
    let mut total = 0u64;
    // Images without a listed size: which destination registries need each, and the
    // source repository to read it from. Their manifests are read at once (the copies
    // then take them from the shared reads), each folded in as it comes, not kept.
    // Keyed by the platforms selected too: a filtered copy moves only their blobs.
    type Wanted = BTreeMap<(Digest, Vec<String>), (Arc<str>, Vec<Arc<str>>)>;
    let mut wanted: Wanted = BTreeMap::new();
    for item in items.iter().filter(|i| i.action == Action::Copy) {
        let Some(digest) = &item.digest else { continue };
        // A listed size is the whole image's: not the size of a filtered copy.
        let listed = listed_size(digest).filter(|_| item.filtered_digest.is_none());
        match listed {
            Some(size) => {
                if first(&item.destination_registry, digest) {
                    total += size;
                }
            }
            None => wanted
                .entry((digest.clone(), item.target.platforms.clone()))
                .or_insert_with(|| (item.source_repository.clone(), Vec::new()))
                .1
                .push(item.destination_registry.clone()),
        }
    }
    let mut sizes = futures::stream::iter(wanted)
        .map(
            |((digest, platforms), (repository, registries))| async move {
                let repo = Repo::new(source.host(), &*repository);
                let blobs = blob_sizes(client, shared, &repo, &digest, &platforms).await?;
                Ok::<_, Error>((registries, blobs))
            },
        )
        .buffered(LISTING_CONCURRENCY);
    while let Some((registries, blobs)) = sizes.try_next().await? {
        for registry in registries {
            for (blob, size) in &blobs {
                if first(&registry, blob) {
                    total += size;
                }
            }
        }
    }
    Ok(total)
}

/// Config and layer blobs of an image (the `platforms` of an index its copy keeps; all of
/// them when `platforms` is empty or selects nothing: the copy then fails). Each manifest digest
/// is fetched once however many indexes list it, and an index that lists itself or nests
/// deeper than [`MAX_DEPTH`] is [`Error::InvalidManifest`]: a registry cannot make the walk
/// unbounded.
async fn blob_sizes(
    client: &crate::registry::RegistryClient,
    shared: &SharedReads,
    repo: &Repo,
    digest: &Digest,
    platforms: &[String],
) -> Result<Vec<(Digest, u64)>, Error> {
    let mut out = Vec::new();
    let mut seen = HashSet::from([digest.clone()]);
    let mut todo = vec![(digest.clone(), 0usize)];
    while let Some((d, depth)) = todo.pop() {
        let m = shared
            .manifest(client, repo, d.as_str(), None)
            .await?
            .ok_or_else(|| Error::NotFound {
                registry: repo.registry.clone(),
                repository: repo.repository.clone(),
                what: format!("manifest {d}"),
            })?;
        let invalid = |reason: String| Error::InvalidManifest {
            registry: repo.registry.clone(),
            repository: repo.repository.clone(),
            reference: d.to_string(),
            reason,
        };
        // The root of a filtered copy: the index it writes.
        let selected = (depth == 0)
            .then(|| select(&m, platforms).ok().flatten())
            .flatten();
        let bytes = selected.as_ref().map_or(&m.bytes, |s| &s.raw.bytes);
        match manifest::parse(bytes) {
            Ok(Parsed::Index { manifests, .. }) => {
                if manifests.iter().any(|c| c.digest == d) {
                    return Err(invalid("the index lists itself".into()));
                }
                if depth >= MAX_DEPTH && !manifests.is_empty() {
                    return Err(invalid(format!(
                        "manifests nest deeper than {MAX_DEPTH} (under {digest})"
                    )));
                }
                for c in manifests.into_iter().take(64) {
                    if seen.insert(c.digest.clone()) {
                        todo.push((c.digest, depth + 1));
                    }
                }
            }
            Ok(Parsed::Image { config, layers, .. }) => {
                out.extend(
                    config
                        .into_iter()
                        .chain(layers)
                        .filter(|b| !b.is_foreign())
                        .map(|b| (b.digest, b.size)),
                );
            }
            Err(_) => {}
        }
    }
    Ok(out)
}
