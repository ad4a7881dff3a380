//! Promotion gates: whether an image may be copied yet.
//!
//! A rule's gates (`rules[].gates`, see `config::Gates`) are evaluated against the source
//! image before any copy: the scan gate reads ECR's scan findings of the digest
//! (`DescribeImageScanFindings`, basic and enhanced scanning alike), the signature gate
//! looks for a cosign or Notation signature a listed verifier accepts. An image that fails
//! a gate is *blocked*; one whose scan is not complete yet is *held* (until the scan
//! completes, or `waitMinutes` pass: then it is blocked, `scan-timeout`).

mod check;
pub mod scan;
pub mod signature;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::FindingSeverity;

pub use check::{GateCheck, GateImage};

/// Which gate decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateName {
    /// The scan gate.
    Scan,
    /// The signature gate.
    Signature,
}

impl GateName {
    /// `scan` or `signature`.
    pub fn as_str(self) -> &'static str {
        match self {
            GateName::Scan => "scan",
            GateName::Signature => "signature",
        }
    }
}

/// Why a gate holds or blocks an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReason {
    /// The gate.
    pub gate: GateName,
    /// A short, stable code: `scan-pending`, `scan-timeout`, `scan-failed`, `severity`,
    /// or the signature gate's (`no-signature`, `untrusted`, ...).
    pub code: String,
    /// What a person reads.
    pub reason: String,
    /// The scan's findings by severity (ignored findings left out); empty for others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<FindingSeverity, u64>,
}

impl GateReason {
    /// A reason without findings.
    pub fn new(gate: GateName, code: &str, reason: impl Into<String>) -> GateReason {
        GateReason {
            gate,
            code: code.to_string(),
            reason: reason.into(),
            findings: BTreeMap::new(),
        }
    }
}

impl fmt::Display for GateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} gate: {} ({})",
            self.gate.as_str(),
            self.reason,
            self.code
        )
    }
}

/// A verdict that stops a copy, as `ferry status` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateStatus {
    /// `held` or `blocked`.
    pub verdict: String,
    /// Why.
    #[serde(flatten)]
    pub reason: GateReason,
}

impl GateStatus {
    /// The status of a verdict that does not pass.
    pub fn of(verdict: &Verdict) -> Option<GateStatus> {
        verdict.reason().map(|reason| GateStatus {
            verdict: verdict.as_str().to_string(),
            reason: reason.clone(),
        })
    }
}

/// What the gates say about an image for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every gate passed (or the target has none): copy it.
    Pass,
    /// Not yet: the scan has not completed. Released when it does.
    Held(GateReason),
    /// A gate failed: never copied unless the image changes (a new scan, a signature).
    Blocked(GateReason),
}

impl Verdict {
    /// Whether the image may be copied.
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// The reason, unless it passes.
    pub fn reason(&self) -> Option<&GateReason> {
        match self {
            Verdict::Pass => None,
            Verdict::Held(r) | Verdict::Blocked(r) => Some(r),
        }
    }

    /// `pass`, `held` or `blocked`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Held(_) => "held",
            Verdict::Blocked(_) => "blocked",
        }
    }

    /// Two gates of one rule (AND): the first that does not pass decides, a block before
    /// a hold (a block is final, a hold is not).
    pub fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Blocked(r), _) | (_, Verdict::Blocked(r)) => Verdict::Blocked(r),
            (Verdict::Held(r), _) | (_, Verdict::Held(r)) => Verdict::Held(r),
            (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
        }
    }

    /// Two rules' gate sets (OR): a pass wins, then a hold (it may still pass).
    pub fn or(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Pass, _) | (_, Verdict::Pass) => Verdict::Pass,
            (Verdict::Held(r), _) | (_, Verdict::Held(r)) => Verdict::Held(r),
            (Verdict::Blocked(r), Verdict::Blocked(_)) => Verdict::Blocked(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Verdict {
        Verdict::Held(GateReason::new(
            GateName::Scan,
            "scan-pending",
            "scan not complete",
        ))
    }

    fn blocked() -> Verdict {
        Verdict::Blocked(GateReason::new(GateName::Signature, "no-signature", "none"))
    }

    #[test]
    fn gates_of_a_rule_combine_with_and_rules_with_or() {
        assert_eq!(Verdict::Pass.and(held()), held());
        assert_eq!(held().and(blocked()), blocked());
        assert_eq!(Verdict::Pass.and(Verdict::Pass), Verdict::Pass);
        assert_eq!(blocked().or(Verdict::Pass), Verdict::Pass);
        assert_eq!(blocked().or(held()), held());
        assert_eq!(blocked().or(blocked()), blocked());
    }
}
