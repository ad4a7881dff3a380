//! Ferry's event-driven pipeline, shared by the `dispatch`, `replicate` and `reconcile`
//! Lambda functions and testable without a Lambda runtime.
//!
//! ```text
//! ECR push ──EventBridge "ECR Image Action"──▶ dispatch ──SQS FIFO jobs──▶ replicate ──▶ destinations
//!                                                                               ├─▶ result events
//! schedule ──▶ reconcile ──(drift)──▶ same SQS jobs                             └─▶ EMF metrics
//! ```
//!
//! - [`event`]: the typed ECR Image Action event.
//! - [`job`]: the versioned job message (`docs/job-schema.md`).
//! - [`authorize`]: the config as the authority over what a job may do.
//! - [`dispatch`], [`replicate`](mod@replicate), [`reconcile`](mod@reconcile): the handlers, plain async
//!   functions taking their dependencies ([`queue::JobQueue`], [`result::ResultPublisher`],
//!   [`replicate::Engine`], [`reconcile::DriftSource`]) as arguments.
//! - [`ledger`]: the failure ledger (permanent failures held back from reconcile until
//!   their backoff expires) and reconcile's cursor.
//! - [`live`]: the config with its organization destinations' accounts, kept for a TTL.
//! - [`settings`]: config loading (`FERRY_CONFIG` / `FERRY_CONFIG_PARAMETER`) and the
//!   environment.
//! - [`metrics`]: CloudWatch Embedded Metric Format records.
//! - [`results_log`]: result events read back from the replicate function's log group
//!   (`ferry status`).
//! - [`poller`]: the local SQS event source used by the demo and the tests.
//! - [`functions`]: what each Lambda function builds once at init.

pub mod authority;
pub mod authorize;
pub mod dispatch;
pub mod error;
pub mod event;
pub mod functions;
pub mod gate;
pub mod job;
pub mod ledger;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod queue;
pub mod reconcile;
pub mod replicate;
pub mod result;
pub mod results_log;
pub mod settings;

pub use error::PipelineError;
pub use job::{Job, JobAction, JobSource, JobTarget};
pub use metrics::Metrics;
pub use result::{ReplicationResult, Status};
