//! Promotion gates: whether an image may be copied yet.
//!
//! A rule's gates (`rules[].gates`, see `config::Gates`) are evaluated against the source
//! image before any copy: the scan gate reads ECR's scan findings of the digest
//! (`DescribeImageScanFindings`, basic and enhanced scanning alike), the signature gate
//! looks for a cosign or Notation signature a listed verifier accepts. An image that fails
//! a gate is *blocked*; one whose scan is not complete yet is *held* (until the scan
//! completes, or `waitMinutes` pass: then it is blocked, `scan-timeout`).

pub mod signature;
