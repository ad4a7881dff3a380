//! What the plan says about ECR registry settings: destinations that sign images
//! themselves (managed signing), and pull-through cache repositories of the source left
//! out because no rule names them (see [`crate::ecr::pull_through`]).

use futures::StreamExt;
use serde::Serialize;

use crate::config::{Registry, ReplicationConfig, Target};
use crate::ecr::pull_through::{cache_prefix, rule_names_cache};
use crate::reference::EcrRegistry;
use crate::replicate::Replicator;

/// A destination repository whose registry signs the images pushed there itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfSigned {
    /// Destination `registry/repository`.
    pub destination: String,
    /// The AWS Signer profile of the destination's signing rule.
    pub signing_profile_arn: String,
    /// Whether the source's signatures are copied as well: only when a rule says
    /// `referrers: true` explicitly.
    pub copies_source_signatures: bool,
}

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} signs images itself ({}): {}",
            self.destination,
            self.signing_profile_arn,
            if self.copies_source_signatures {
                "the source's signatures are copied too (referrers: true)"
            } else {
                "the source's signatures are not copied"
            }
        )
    }
}

/// A pull-through cache repository of the source that the plan leaves out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheLeftOut {
    /// The repository.
    pub repository: String,
    /// The pull-through cache rule's repository prefix it lies under.
    pub prefix: String,
}

impl std::fmt::Display for CacheLeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} left out: a pull-through cache repository (prefix {}), and no rule names it",
            self.repository, self.prefix
        )
    }
}

/// Destination registries whose signing configuration is read at once.
const SIGNING_READS_AT_ONCE: usize = 16;

/// Every target that signs itself, once per destination repository. The destinations'
/// configurations are read [`SIGNING_READS_AT_ONCE`] at a time (each registry once), not
/// one after another: an organization of hundreds of destination registries would
/// otherwise wait for hundreds of round trips in a row.
pub(super) async fn self_signed<'a>(
    replicator: &Replicator,
    targets: impl Iterator<Item = &'a Target>,
) -> Vec<SelfSigned> {
    // Boxed, so that the plan's future stays `Send` for every lifetime its callers ask for.
    type Read<'r> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Option<SelfSigned>> + Send + 'r>>;
    let wanted: Vec<&Target> = targets.filter(|t| t.referrers).collect();
    let reads: Vec<Read<'_>> = wanted
        .into_iter()
        .map(|t| {
            Box::pin(async move {
                replicator
                    .destination_signs(t)
                    .await
                    .map(|profile| SelfSigned {
                        destination: format!("{}/{}", t.destination.registry_host(), t.repository),
                        signing_profile_arn: profile,
                        copies_source_signatures: t.referrers_explicit,
                    })
            }) as Read<'_>
        })
        .collect();
    futures::stream::iter(reads)
        .buffered(SIGNING_READS_AT_ONCE)
        .filter_map(|s| async move { s })
        .collect()
        .await
}

/// Drop from `repos` (listed at the ECR `source`) the pull-through cache repositories no
/// rule names; answer them. Without the ECR API (another registry, a local endpoint) or
/// when the rules cannot be read (moto, or IAM without
/// `ecr:DescribePullThroughCacheRules`: logged), nothing is left out.
pub(super) async fn leave_out_caches(
    replicator: &Replicator,
    source: &Registry,
    repos: &mut Vec<String>,
) -> Vec<CacheLeftOut> {
    let (
        Some(ecr),
        Registry::Ecr {
            registry_id,
            region,
        },
    ) = (replicator.ecr(), source)
    else {
        return Vec::new();
    };
    if replicator
        .copier()
        .client()
        .endpoints()
        .is_overridden(&source.host())
    {
        return Vec::new();
    }
    let registry = EcrRegistry::new(registry_id, region);
    let prefixes = match ecr.pull_through_prefixes(&registry, None).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(registry = %source.host(), error = %e, "pull-through cache rules not read: no repository is treated as a cache");
            return Vec::new();
        }
    };
    let config = replicator.config();
    let mut left = Vec::new();
    repos.retain(|r| match cache_prefix(&prefixes, r) {
        Some(prefix) if !named(config, prefix, r) => {
            left.push(CacheLeftOut {
                repository: r.clone(),
                prefix: prefix.to_string(),
            });
            false
        }
        _ => true,
    });
    left
}

fn named(config: &ReplicationConfig, prefix: &str, repository: &str) -> bool {
    config
        .rules
        .iter()
        .any(|rule| rule_names_cache(rule, prefix, repository))
}
