//! Ferry's result events: the `detail` of each `Ferry Image Replication` event the
//! replicate function publishes, the log line that carries the same JSON, and the reader
//! that finds results again in the replicate function's log group.
//!
//! The failure ledger's item format and its reader ([`ledger`]) live here too.
//!
//! One home for the format, used by the pipeline (which writes results) and by the CLI
//! (`ferry status` and `ferry failures`, which read them), so the CLI does not link the
//! Lambda crate.

mod event;
mod failures;
pub mod ledger;
mod log;
mod wire;

pub use event::{
    MAX_ERROR_MESSAGE, MAX_LISTED, REASON_ARCHIVED, REASON_UNTAG_UNSUPPORTED, RESULT_DETAIL_TYPE,
    RESULT_LOG_FIELD, RESULT_LOG_MESSAGE, RESULT_SOURCE, ReplicationResult, ResultDestination,
    Status, log_result, testing,
};
pub use failures::{Failure, failures};
pub use log::{MAX_PAGES, ResultsLog, latest_for, parse_logged};
pub use wire::{JobAction, JobSource, Origin};
