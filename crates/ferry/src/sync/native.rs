//! ECR native replication beside Ferry, checked at the source (`ferry validate
//! --against-registry` and `ferry plan`).

use crate::config::{NativeOverlap, Registry};
use crate::error::Error;
use crate::reference::EcrRegistry;
use crate::replicate::Replicator;

use super::listing::Lister;

/// Where the source's native replication rules and the config's rules write the same
/// repositories, over `repositories` (`None`: the source's repositories the rules select,
/// listed). Empty for a source that is not ECR, or has no native rules.
pub async fn native_overlaps(
    replicator: &Replicator,
    repositories: Option<Vec<String>>,
) -> Result<Vec<NativeOverlap>, Error> {
    let config = replicator.config();
    let (Some(ecr), Some(source)) = (replicator.ecr(), config.source_registry()) else {
        return Ok(Vec::new());
    };
    let Registry::Ecr {
        registry_id,
        region,
    } = &source
    else {
        return Ok(Vec::new());
    };
    let native = ecr
        .native_replication(&EcrRegistry::new(registry_id, region), None)
        .await?;
    if native.is_empty() {
        return Ok(Vec::new());
    }
    let mut repositories = match repositories {
        Some(names) => names,
        None => {
            Lister::new(replicator.copier().client(), Some(ecr))
                .repositories(&source)
                .await?
        }
    };
    repositories.retain(|r| config.repository_selected(r));
    repositories.sort_unstable();
    repositories.dedup();
    Ok(config.native_overlaps(&native, &repositories))
}
