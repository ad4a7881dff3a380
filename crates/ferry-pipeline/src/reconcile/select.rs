//! Which drift one reconcile run enqueues: the drift in a stable order (by destination,
//! then action and source image), from the item after the cursor (where the last capped
//! run stopped) to the end of the order, at most `max_jobs` of them. Items the ledger
//! holds back and conflicts are passed over without using the cap. A run that reaches the
//! end clears the cursor, so the next one starts again at the beginning: with `N` items
//! to enqueue and a cap `C`, every item is enqueued once within `ceil(N / C)` runs of a
//! cleared cursor.

/// What one run enqueues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Indices (into the ordered keys) to enqueue, in order.
    pub chosen: Vec<usize>,
    /// Where the next run starts after: the key of the last item chosen, when items after
    /// it were left for the next run; `None` when this run reached the end of the order.
    pub next_cursor: Option<String>,
    /// Whether the cursor given was past the end of the order (the run started over).
    pub restarted: bool,
}

/// Select from `keys` (sorted ascending) the items to enqueue: those `eligible` says may
/// go, from the first key after `cursor`, at most `max_jobs`.
pub fn select(
    keys: &[String],
    eligible: impl Fn(usize) -> bool,
    cursor: Option<&str>,
    max_jobs: usize,
) -> Selection {
    debug_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "keys are sorted");
    let mut start = cursor.map_or(0, |c| keys.partition_point(|k| k.as_str() <= c));
    let mut restarted = false;
    if start > 0 && !(start..keys.len()).any(&eligible) {
        // Nothing left after the cursor (those items were copied): start over.
        start = 0;
        restarted = true;
    }
    let mut out = Selection {
        restarted,
        ..Selection::default()
    };
    for i in start..keys.len() {
        if !eligible(i) {
            continue;
        }
        if out.chosen.len() == max_jobs {
            // More after the last chosen item: the next run continues after it.
            out.next_cursor = out.chosen.last().map(|&last| keys[last].clone());
            return out;
        }
        out.chosen.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        let mut k: Vec<String> = (0..n).map(|i| format!("dest/{i:05}")).collect();
        k.sort();
        k
    }

    /// 2,500 items, a cap of 1,000: three runs enqueue every item exactly once; the
    /// fourth starts over.
    #[test]
    fn three_runs_cover_2500_items_once_and_the_fourth_wraps() {
        let keys = keys(2500);
        let mut cursor: Option<String> = None;
        let mut seen = vec![0usize; keys.len()];
        let mut per_run = Vec::new();
        for _ in 0..3 {
            let s = select(&keys, |_| true, cursor.as_deref(), 1000);
            per_run.push(s.chosen.len());
            for &i in &s.chosen {
                seen[i] += 1;
            }
            cursor = s.next_cursor;
        }
        assert_eq!(per_run, [1000, 1000, 500]);
        assert!(seen.iter().all(|&n| n == 1), "every item exactly once");
        assert_eq!(cursor, None, "the third run reached the end");
        let fourth = select(&keys, |_| true, cursor.as_deref(), 1000);
        assert_eq!(fourth.chosen.first(), Some(&0), "the fourth run wraps");
        assert_eq!(fourth.chosen.len(), 1000);
        assert_eq!(fourth.next_cursor.as_deref(), Some(keys[999].as_str()));
    }

    #[test]
    fn held_items_do_not_use_the_cap() {
        let keys = keys(10);
        // Items 0..5 are held by the ledger.
        let s = select(&keys, |i| i >= 5, None, 3);
        assert_eq!(s.chosen, [5, 6, 7]);
        assert_eq!(s.next_cursor.as_deref(), Some(keys[7].as_str()));
        let s = select(&keys, |i| i >= 5, s.next_cursor.as_deref(), 3);
        assert_eq!(s.chosen, [8, 9]);
        assert_eq!(s.next_cursor, None);
    }

    #[test]
    fn a_cursor_whose_item_was_copied_continues_after_its_place() {
        let all = keys(10);
        let cursor = all[4].clone();
        let fewer: Vec<String> = all.iter().filter(|k| **k != cursor).cloned().collect();
        let s = select(&fewer, |_| true, Some(&cursor), 2);
        assert_eq!(
            s.chosen
                .iter()
                .map(|&i| fewer[i].as_str())
                .collect::<Vec<_>>(),
            [all[5].as_str(), all[6].as_str()]
        );
    }

    #[test]
    fn a_cursor_past_the_end_starts_over() {
        let keys = keys(5);
        let s = select(&keys, |_| true, Some("zzz"), 2);
        assert!(s.restarted);
        assert_eq!(s.chosen, [0, 1]);
        // Exactly the cap left: the run reaches the end, no cursor.
        let s = select(&keys, |_| true, Some(keys[2].as_str()), 2);
        assert_eq!((s.chosen, s.next_cursor), (vec![3, 4], None));
        assert!(select(&[], |_| true, Some("x"), 2).chosen.is_empty());
    }
}
