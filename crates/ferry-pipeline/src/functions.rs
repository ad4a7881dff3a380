//! What each Lambda function builds once at init from its environment, and its handler as
//! a method. The binaries only wire tracing and the runtime around these.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use ferry::aws::AwsContext;
use ferry::config::ReplicationConfig;
use ferry::replicate::Replicator;

use crate::dispatch::{Dispatched, dispatch};
use crate::error::PipelineError;
use crate::metrics::Metrics;
use crate::queue::SqsJobQueue;
use crate::reconcile::{Reconciled, reconcile};
use crate::replicate::{ReplicateContext, replicate};
use crate::result::EventBridgePublisher;
use crate::settings::{
    ConfigSource, ENV_EVENT_BUS_NAME, ENV_JOB_CONCURRENCY, ENV_JOBS_QUEUE_URL,
    ENV_MAX_JOBS_PER_RUN, build_reading_replicator, build_replicator, check_hub_partition,
    env_required, env_usize, load_config,
};

/// Default `FERRY_JOB_CONCURRENCY`.
pub const DEFAULT_JOB_CONCURRENCY: usize = 4;
/// Default `FERRY_MAX_JOBS_PER_RUN`.
pub const DEFAULT_MAX_JOBS_PER_RUN: usize = 1000;

async fn config(aws: &AwsContext) -> Result<Arc<ReplicationConfig>, PipelineError> {
    let source = ConfigSource::from_env()?;
    let ssm = aws_sdk_ssm::Client::new(aws.base());
    let config = load_config(&source, Some(&ssm)).await?;
    check_hub_partition(&config, aws.base().region().map(|r| r.as_ref()))?;
    Ok(config)
}

fn sqs(aws: &AwsContext) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(aws.base())
}

/// The dispatch function's state.
pub struct DispatchFunction {
    /// The config.
    pub config: Arc<ReplicationConfig>,
    /// The jobs queue.
    pub queue: SqsJobQueue,
    /// Metrics.
    pub metrics: Metrics,
}

impl DispatchFunction {
    /// From the environment: config, `FERRY_JOBS_QUEUE_URL`.
    pub async fn from_env() -> Result<DispatchFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let queue = SqsJobQueue::new(sqs(&aws), &env_required(ENV_JOBS_QUEUE_URL)?);
        Ok(DispatchFunction {
            config,
            queue,
            metrics: Metrics::stdout(),
        })
    }

    /// Handle one event.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Dispatched, PipelineError> {
        dispatch(event, &self.config, &self.queue, &self.metrics).await
    }
}

/// The replicate function's state.
pub struct ReplicateFunction {
    /// The handler's context.
    pub ctx: ReplicateContext,
}

impl ReplicateFunction {
    /// From the environment: config, `FERRY_EVENT_BUS_NAME`, `FERRY_JOB_CONCURRENCY`.
    pub async fn from_env() -> Result<ReplicateFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let bus = env_required(ENV_EVENT_BUS_NAME)?;
        let concurrency = env_usize(ENV_JOB_CONCURRENCY, DEFAULT_JOB_CONCURRENCY)?;
        let replicator = build_replicator(config.clone(), aws.clone()).await?;
        let results = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(aws.base()), &bus);
        Ok(ReplicateFunction {
            ctx: ReplicateContext {
                config,
                engine: Arc::new(replicator),
                results: Arc::new(results),
                metrics: Metrics::stdout(),
                concurrency,
            },
        })
    }

    /// Handle one SQS batch; `deadline` is the invocation's.
    pub async fn handle(&self, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        replicate(event, Some(Instant::now() + left), &self.ctx)
            .await
            .response()
    }
}

/// The reconcile function's state.
pub struct ReconcileFunction {
    /// The replicator whose plan finds the drift.
    pub replicator: Replicator,
    /// The jobs queue.
    pub queue: SqsJobQueue,
    /// Metrics.
    pub metrics: Metrics,
    /// `FERRY_MAX_JOBS_PER_RUN`.
    pub max_jobs: usize,
}

impl ReconcileFunction {
    /// From the environment: config, `FERRY_JOBS_QUEUE_URL`, `FERRY_MAX_JOBS_PER_RUN`.
    pub async fn from_env() -> Result<ReconcileFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let queue = SqsJobQueue::new(sqs(&aws), &env_required(ENV_JOBS_QUEUE_URL)?);
        let max_jobs = env_usize(ENV_MAX_JOBS_PER_RUN, DEFAULT_MAX_JOBS_PER_RUN)?;
        let replicator = build_reading_replicator(config, aws).await?;
        Ok(ReconcileFunction {
            replicator,
            queue,
            metrics: Metrics::stdout(),
            max_jobs,
        })
    }

    /// One run; `run_id` is the invocation's request id.
    pub async fn handle(&self, run_id: &str) -> Result<Reconciled, PipelineError> {
        reconcile(
            run_id,
            &self.replicator,
            &self.queue,
            &self.metrics,
            self.max_jobs,
        )
        .await
    }
}
