//! Platform selection in the plan (`rules[].platforms`): a target that selects platforms
//! gets a new index of its own, so "already in place" means its destination tag holds that
//! index's digest, not the source's. The plan computes it from the source index (read once
//! per run through the shared reads, which the copy then takes its bytes from).

use futures::{StreamExt, TryStreamExt};

use super::listing::ListedImage;
use crate::config::Target;
use crate::copy::SharedReads;
use crate::copy::platforms::select_in;
use crate::digest::Digest;
use crate::error::Error;
use crate::registry::{RegistryClient, Repo};

/// Source manifests of one destination repository read at once.
const CONCURRENCY: usize = 8;

/// What a target's copy of one image writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// The source's manifest, byte for byte.
    Source,
    /// A new index of the selected platforms, with this digest.
    Filtered(Digest),
    /// The copy will fail (no platform matches, or the source manifest cannot be read as
    /// one): planned as a copy, which reports why.
    Fails,
}

impl Written {
    /// The digest the destination holds when the image is in place (`None`: never).
    pub(super) fn expected<'a>(&'a self, source: &'a Digest) -> Option<&'a Digest> {
        match self {
            Written::Source => Some(source),
            Written::Filtered(d) => Some(d),
            Written::Fails => None,
        }
    }

    /// The written digest, when it is not the source's.
    pub(super) fn filtered(&self) -> Option<Digest> {
        match self {
            Written::Filtered(d) => Some(d.clone()),
            _ => None,
        }
    }
}

/// What `target`'s copy of each of `imgs` (images of the source registry `source_host`)
/// writes. Without `target.platforms`, the source's manifests, and nothing is read.
pub(super) async fn written(
    client: &RegistryClient,
    shared: &SharedReads,
    source_host: &str,
    target: &Target,
    imgs: &[&ListedImage],
) -> Result<Vec<Written>, Error> {
    if target.platforms.is_empty() {
        return Ok(vec![Written::Source; imgs.len()]);
    }
    // Owned items: a closure over borrowed ones makes the plan's future lose `Send`.
    let todo: Vec<(String, Digest)> = imgs
        .iter()
        .map(|img| (img.repository.clone(), img.digest.clone()))
        .collect();
    let platforms = target.platforms.as_slice();
    futures::stream::iter(todo)
        .map(move |(repository, digest)| async move {
            let repo = Repo::new(source_host, &repository);
            let Some(raw) = shared.manifest(client, &repo, digest.as_str(), None).await? else {
                // Gone since it was listed: the copy says so.
                return Ok(Written::Fails);
            };
            Ok(match select_in(&repo, &raw, platforms) {
                Ok(None) => Written::Source,
                Ok(Some(selection)) => Written::Filtered(selection.raw.digest),
                Err(e) => {
                    tracing::warn!(%repository, %digest, error = %e, "platforms not selectable: the copy will fail");
                    Written::Fails
                }
            })
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::Authenticator;
    use crate::config::ReplicationConfig;
    use crate::registry::{ClientOptions, Endpoints};
    use crate::sync::{Action, RepoState};

    fn client() -> RegistryClient {
        RegistryClient::new(
            Authenticator::anonymous(),
            Endpoints::new(),
            ClientOptions::default(),
        )
        .expect("client")
    }

    /// The target of `app:v1` under a rule selecting `platforms`.
    fn target(platforms: &str) -> Arc<Target> {
        let config = ReplicationConfig::from_json(&format!(
            r#"{{"source": {{"registry": "src.example"}},
                "rules": [{{"platforms": {platforms},
                            "destinations": [{{"registry": "dst.example"}}]}}]}}"#
        ))
        .expect("config");
        let mut targets = config.destinations_for("app", Some("v1")).expect("targets");
        Arc::new(targets.remove(0))
    }

    fn image(digest: &Digest) -> ListedImage {
        ListedImage {
            repository: "app".into(),
            tag: Some("v1".into()),
            digest: digest.clone(),
            size: None,
            archived: None,
        }
    }

    fn at_tag(digest: &Digest) -> RepoState {
        let mut state = RepoState::default();
        state.tags.insert("v1".into(), Some(digest.clone()));
        state
    }

    #[tokio::test]
    async fn without_platforms_nothing_is_read_and_the_source_is_written() {
        let target = target("[]");
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let imgs = [image(&a), image(&b)];
        let refs: Vec<&ListedImage> = imgs.iter().collect();
        // An unreachable source: any read would fail.
        let written = written(
            &client(),
            &SharedReads::default(),
            "127.0.0.1:9",
            &target,
            &refs,
        )
        .await
        .expect("nothing read");
        assert_eq!(written, vec![Written::Source, Written::Source]);
    }

    #[tokio::test]
    async fn a_filtered_target_is_in_place_only_at_the_filtered_digest() {
        let target = target(r#"["linux/amd64"]"#);
        assert_eq!(target.platforms, vec!["linux/amd64".to_string()]);
        let source = Digest::of(b"source index");
        let filtered = Digest::of(b"filtered index");
        let img = image(&source);
        let client = client();
        let plan = |written: Written, state: RepoState| {
            let (target, img, client) = (target.clone(), img.clone(), client.clone());
            async move {
                super::super::plan::compare(&target, &[&img], &[written], &state, &client)
                    .await
                    .expect("compare")
                    .remove(0)
            }
        };

        let item = plan(Written::Filtered(filtered.clone()), at_tag(&filtered)).await;
        assert_eq!(item.action, Action::Skip, "a second sync does nothing");
        assert_eq!(item.digest.as_ref(), Some(&source));
        assert_eq!(item.filtered_digest.as_ref(), Some(&filtered));

        let item = plan(Written::Filtered(filtered.clone()), at_tag(&source)).await;
        assert_eq!(
            item.action,
            Action::Copy,
            "the unfiltered image is not the one wanted"
        );
        assert_eq!(item.existing.as_ref(), Some(&source));

        let item = plan(Written::Fails, at_tag(&source)).await;
        assert_eq!(item.action, Action::Copy, "the copy reports the failure");
        assert_eq!(item.filtered_digest, None);

        let item = plan(Written::Source, at_tag(&source)).await;
        assert_eq!(item.action, Action::Skip);
        assert_eq!(item.filtered_digest, None);
    }
}
