//! What ECR's archive storage class does to a plan item: an archived source image is not
//! copied (and is no drift), a destination copy that is archived is in place (never copied
//! over), and a target with `archive: "follow"` archives or restores its copy to match the
//! source.

use super::plan::Action;
use crate::ecr::{ArchiveState, ImageStatus};

/// The action the archive states decide, if they decide one: `source` and `held` are the
/// source image's and the destination copy's states (`None`: active), `present` whether
/// the destination holds the image's digest, `follow` whether the target follows the
/// source's storage class (an ECR destination of a rule with `archive: "follow"`).
pub(super) fn storage_action(
    source: Option<&ArchiveState>,
    held: Option<&ArchiveState>,
    present: bool,
    follow: bool,
) -> Option<Action> {
    match (source, held) {
        // Archived at the source, active copy, following: archive the copy. (A source
        // being restored, ACTIVATING, never archives anything.)
        (Some(s), None) if follow && present && s.status == ImageStatus::Archived => {
            Some(Action::Archive)
        }
        // Archived or being restored at the source: not copied, not drift.
        (Some(_), _) => Some(Action::Archived),
        // Active at the source, archived copy: restored when following, else in place.
        (None, Some(h)) if follow && h.status == ImageStatus::Archived => Some(Action::Restore),
        (None, Some(_)) => Some(Action::Skip),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: ImageStatus) -> Option<ArchiveState> {
        Some(ArchiveState {
            status,
            last_archived_at: Some("2026-11-01T00:00:00Z".into()),
        })
    }

    #[test]
    fn archive_states_decide() {
        let archived = state(ImageStatus::Archived);
        let activating = state(ImageStatus::Activating);
        let (a, b) = (archived.as_ref(), activating.as_ref());
        // Nothing archived: the plan's usual comparison decides.
        assert_eq!(storage_action(None, None, true, true), None);
        // Archived source: never copied; followed only onto a copy that is there.
        assert_eq!(
            storage_action(a, None, false, false),
            Some(Action::Archived)
        );
        assert_eq!(storage_action(a, None, true, false), Some(Action::Archived));
        assert_eq!(storage_action(a, None, false, true), Some(Action::Archived));
        assert_eq!(storage_action(a, None, true, true), Some(Action::Archive));
        assert_eq!(storage_action(a, a, true, true), Some(Action::Archived));
        // Being restored at the source: not copied yet, and the copy is not archived.
        assert_eq!(storage_action(b, None, true, true), Some(Action::Archived));
        // Archived copy of an active source: in place, restored only when following.
        assert_eq!(storage_action(None, a, true, false), Some(Action::Skip));
        assert_eq!(storage_action(None, a, true, true), Some(Action::Restore));
        assert_eq!(storage_action(None, b, true, true), Some(Action::Skip));
    }
}
