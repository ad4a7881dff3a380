//! Errors of the pipeline beyond the engine's [`ferry::Error`]: configuration loading,
//! malformed input and the AWS messaging services.

/// Everything the pipeline's own code can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The replication configuration could not be found, read or validated. At init this
    /// fails the cold start with the validation message.
    #[error("configuration: {0}")]
    Config(String),

    /// A required environment variable is missing or has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// An incoming event could not be understood. Logged with its id and counted in the
    /// `MalformedEvents` metric; never retried into a loop.
    #[error("malformed event {id}: {reason}")]
    Malformed {
        /// The event id (or message id), `unknown` when absent.
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A job message could not be decoded.
    #[error("malformed job message: {0}")]
    Job(String),

    /// An AWS messaging call (SQS, EventBridge, SSM) failed, after retries where the call
    /// allows partial failures.
    #[error("AWS {service} {operation} failed: {message}")]
    Aws {
        /// Service, such as `sqs`.
        service: &'static str,
        /// Operation, such as `SendMessageBatch`.
        operation: &'static str,
        /// What the service said.
        message: String,
    },

    /// The failure ledger's DynamoDB table could not be read or written. Replicate logs it
    /// and counts it (`LedgerErrors`) without changing the job's outcome; reconcile then
    /// enqueues as if the ledger were empty.
    #[error("failure ledger {table}: DynamoDB {operation} failed: {message}")]
    Ledger {
        /// The table (`FERRY_LEDGER_TABLE`).
        table: String,
        /// Operation, such as `PutItem`.
        operation: &'static str,
        /// What the service said.
        message: String,
    },

    /// An item read back from the failure ledger is not one Ferry writes: it is skipped
    /// (the image is not held back).
    #[error("failure ledger {table}: item {key} is malformed: {reason}")]
    LedgerItem {
        /// The table.
        table: String,
        /// The item's key (`pk`/`sk`), as far as it could be read.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The engine failed outside of a job (for example while planning a reconcile run).
    #[error(transparent)]
    Engine(Box<ferry::Error>),
}

impl From<ferry::Error> for PipelineError {
    fn from(e: ferry::Error) -> PipelineError {
        PipelineError::Engine(Box::new(e))
    }
}

impl PipelineError {
    /// A short stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Config(_) => "config",
            PipelineError::Env { .. } => "env",
            PipelineError::Malformed { .. } => "malformed-event",
            PipelineError::Job(_) => "malformed-job",
            PipelineError::Aws { .. } => "aws",
            PipelineError::Ledger { .. } => "ledger",
            PipelineError::LedgerItem { .. } => "ledger-item",
            PipelineError::Engine(e) => e.code(),
        }
    }
}

/// An SDK error as a [`PipelineError::Aws`], keeping the service's error code.
pub(crate) fn aws_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: aws_sdk_sqs::error::SdkError<E, R>,
) -> PipelineError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    PipelineError::Aws {
        service,
        operation,
        message: sdk_message(err),
    }
}

/// What an SDK error says: the service's error code and message, or the SDK's description.
pub(crate) fn sdk_message<E, R>(err: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        aws_sdk_sqs::error::SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("ServiceError"),
            se.err().message().unwrap_or_default()
        ),
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(PipelineError::Config("x".into()).code(), "config");
        assert_eq!(PipelineError::Job("x".into()).code(), "malformed-job");
        let e = PipelineError::Malformed {
            id: "e-1".into(),
            reason: "no detail".into(),
        };
        assert_eq!(e.to_string(), "malformed event e-1: no detail");
        assert_eq!(
            PipelineError::from(ferry::Error::Deadline("t".into())).code(),
            "deadline"
        );
        let e = PipelineError::Ledger {
            table: "ferry-ledger".into(),
            operation: "PutItem",
            message: "AccessDeniedException: no".into(),
        };
        assert_eq!(e.code(), "ledger");
        assert_eq!(
            e.to_string(),
            "failure ledger ferry-ledger: DynamoDB PutItem failed: AccessDeniedException: no"
        );
        let e = PipelineError::LedgerItem {
            table: "t".into(),
            key: "d/r copy#s/r:v1".into(),
            reason: "`count` is 0".into(),
        };
        assert_eq!(e.code(), "ledger-item");
        assert!(e.to_string().contains("d/r copy#s/r:v1"), "{e}");
    }
}
