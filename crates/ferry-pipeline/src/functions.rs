//! What each Lambda function builds once at init from its environment, and its handler as
//! a method. The binaries only wire tracing and the runtime around these.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use ferry::aws::AwsContext;
use ferry::ecr::EcrControl;
use ferry::organizations::AwsOrganizations;
use ferry::replicate::Replicator;

use crate::authority::AuthorityCell;
use crate::dispatch::{Dispatched, GateStage, dispatch_gated};
use crate::error::PipelineError;
use crate::ledger::{DynamoLedger, ENV_LEDGER_TABLE, Ledger, config_fingerprint};
use crate::live::{LiveConfig, organization_ttl};
use crate::metrics::Metrics;
use crate::queue::SqsJobQueue;
use crate::reconcile::{Pacing, Reconciled, reconcile};
use crate::replicate::{ReplicateContext, replicate};
use crate::result::{EventBridgePublisher, ResultPublisher};
use crate::settings::{
    ConfigSource, DEFAULT_DESTINATIONS_PER_JOB, ENV_DESTINATIONS_PER_JOB, ENV_EVENT_BUS_NAME,
    ENV_JOB_CONCURRENCY, ENV_JOBS_QUEUE_URL, ENV_MAX_JOBS_PER_RUN, build_reading_replicator,
    build_replicator, check_hub_partition, env_required, env_usize, load_config,
};

/// Default `FERRY_JOB_CONCURRENCY`.
pub const DEFAULT_JOB_CONCURRENCY: usize = 4;
/// Default `FERRY_MAX_JOBS_PER_RUN`: what the default fleet (10 invocations × 4 jobs)
/// consumes in the default 15-minute interval at about 10 s a job.
pub const DEFAULT_MAX_JOBS_PER_RUN: usize = 3600;

async fn config(aws: &AwsContext) -> Result<LiveConfig, PipelineError> {
    let source = ConfigSource::from_env()?;
    let ssm = aws_sdk_ssm::Client::new(aws.base());
    let document = load_config(&source, Some(&ssm)).await?;
    check_hub_partition(&document, aws.base().region().map(|r| r.as_ref()))?;
    let ttl = organization_ttl()?;
    let live = LiveConfig::new(document, Arc::new(AwsOrganizations::new(aws.clone())), ttl)
        .with_pull_through(Arc::new(EcrControl::new(aws.clone())), ttl);
    // Read the organization once at init. A scope that cannot be read is logged and
    // counted: only its destinations wait for it, the rest of the config works.
    live.current().await?;
    Ok(live)
}

/// Counts the organization scopes `live` could not read (`OrganizationUnread`, alarmed on
/// by the hub stack); their destinations are left out until they can be read.
fn report_unread(live: &LiveConfig, metrics: &Metrics) -> Vec<String> {
    let unread = live.unread();
    if !unread.is_empty() {
        metrics.emit(crate::metrics::Record::new().metric(
            "OrganizationUnread",
            crate::metrics::Unit::Count,
            unread.len() as f64,
        ));
    }
    unread
}

/// Every message of `event` failed (the config could not be resolved): Lambda retries
/// them, and the queue's redrive policy applies.
fn fail_all(event: &SqsEvent) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = event
        .records
        .iter()
        .filter_map(|m| m.message_id.clone())
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    r
}

fn sqs(aws: &AwsContext) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(aws.base())
}

/// The failure ledger of `FERRY_LEDGER_TABLE`, when it is set.
fn ledger(aws: &AwsContext) -> Option<Arc<dyn Ledger>> {
    std::env::var(ENV_LEDGER_TABLE)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|table| {
            Arc::new(DynamoLedger::new(
                aws_sdk_dynamodb::Client::new(aws.base()),
                table.trim(),
            )) as Arc<dyn Ledger>
        })
}

/// The jobs queue (`FERRY_JOBS_QUEUE_URL`), copies of one image combined into jobs of
/// `FERRY_DESTINATIONS_PER_JOB` destinations.
fn jobs_queue(aws: &AwsContext) -> Result<SqsJobQueue, PipelineError> {
    let per_job = env_usize(ENV_DESTINATIONS_PER_JOB, DEFAULT_DESTINATIONS_PER_JOB)?;
    Ok(SqsJobQueue::new(sqs(aws), &env_required(ENV_JOBS_QUEUE_URL)?).combining(per_job))
}

/// The dispatch function's state.
pub struct DispatchFunction {
    /// The config.
    pub config: LiveConfig,
    /// The jobs queue.
    pub queue: SqsJobQueue,
    /// Metrics.
    pub metrics: Metrics,
    /// The indexes of the current config, built once per config.
    authority: AuthorityCell,
    aws: AwsContext,
    /// Where `HELD` and `BLOCKED` results go (`FERRY_EVENT_BUS_NAME`, optional).
    results: Option<Arc<dyn ResultPublisher>>,
    /// The reading replicator that judges promotion gates, for the config it was built
    /// for: built when a config has gated rules, and rebuilt when it changes.
    gates: tokio::sync::Mutex<Option<(Arc<ferry::config::ReplicationConfig>, Arc<Replicator>)>>,
}

impl DispatchFunction {
    /// From the environment: config, `FERRY_JOBS_QUEUE_URL`, `FERRY_EVENT_BUS_NAME`
    /// (optional: where promotion gates' `HELD` and `BLOCKED` results go),
    /// `FERRY_DESTINATIONS_PER_JOB`.
    pub async fn from_env() -> Result<DispatchFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let queue = jobs_queue(&aws)?;
        let results = std::env::var(ENV_EVENT_BUS_NAME)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .map(|bus| {
                Arc::new(EventBridgePublisher::new(
                    aws_sdk_eventbridge::Client::new(aws.base()),
                    bus.trim(),
                )) as Arc<dyn ResultPublisher>
            });
        Ok(DispatchFunction {
            config,
            queue,
            metrics: Metrics::stdout(),
            authority: AuthorityCell::default(),
            aws,
            results,
            gates: tokio::sync::Mutex::default(),
        })
    }

    /// The replicator judging `config`'s promotion gates; `None` when no rule has gates.
    async fn gatekeeper(
        &self,
        config: &Arc<ferry::config::ReplicationConfig>,
    ) -> Result<Option<Arc<Replicator>>, PipelineError> {
        if !config.rules.iter().any(|r| r.gates().is_some()) {
            return Ok(None);
        }
        let mut current = self.gates.lock().await;
        if let Some((built_for, keeper)) = current.as_ref()
            && Arc::ptr_eq(built_for, config)
        {
            return Ok(Some(keeper.clone()));
        }
        let keeper = Arc::new(build_reading_replicator(config.clone(), self.aws.clone()).await?);
        *current = Some((config.clone(), keeper.clone()));
        Ok(Some(keeper))
    }

    /// Handle one event.
    pub async fn handle(&self, event: serde_json::Value) -> Result<Dispatched, PipelineError> {
        // The envelope's account and region are the image's registry.
        if let (Some(account), Some(region)) = (
            event.get("account").and_then(|v| v.as_str()),
            event.get("region").and_then(|v| v.as_str()),
        ) {
            self.config.note_source(&ecr_registry(account, region));
        }
        let (config, _) = self.config.current().await?;
        report_unread(&self.config, &self.metrics);
        let authority = self.authority.get(&config);
        let keeper = self.gatekeeper(&config).await?;
        let stage = keeper.as_ref().map(|k| GateStage {
            keeper: k.as_ref(),
            results: self.results.as_deref(),
        });
        dispatch_gated(event, &authority, &self.queue, &self.metrics, stage).await
    }
}

/// The replicate function's state.
pub struct ReplicateFunction {
    config: LiveConfig,
    aws: AwsContext,
    results: Arc<dyn ResultPublisher>,
    metrics: Metrics,
    concurrency: usize,
    ledger: Option<Arc<dyn Ledger>>,
    /// Where a job for several destinations sends the part that must be tried again.
    requeue: Option<Arc<dyn crate::queue::JobQueue>>,
    /// The handler's context for the current config (rebuilt when an organization
    /// destination's accounts change).
    ctx: tokio::sync::Mutex<Option<Arc<ReplicateContext>>>,
}

impl ReplicateFunction {
    /// From the environment: config, `FERRY_EVENT_BUS_NAME`, `FERRY_JOB_CONCURRENCY`,
    /// `FERRY_LEDGER_TABLE` (optional), `FERRY_JOBS_QUEUE_URL` (optional: where a job for
    /// several destinations sends the part to try again; without it the whole job is).
    pub async fn from_env() -> Result<ReplicateFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let bus = env_required(ENV_EVENT_BUS_NAME)?;
        let concurrency = env_usize(ENV_JOB_CONCURRENCY, DEFAULT_JOB_CONCURRENCY)?;
        let results = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(aws.base()), &bus);
        let function = ReplicateFunction {
            config,
            aws: aws.clone(),
            results: Arc::new(results),
            metrics: Metrics::stdout(),
            concurrency,
            ledger: ledger(&aws),
            requeue: std::env::var(ENV_JOBS_QUEUE_URL)
                .ok()
                .filter(|u| !u.trim().is_empty())
                .map(|url| {
                    Arc::new(SqsJobQueue::new(sqs(&aws), url.trim()))
                        as Arc<dyn crate::queue::JobQueue>
                }),
            ctx: tokio::sync::Mutex::default(),
        };
        function.context().await?;
        Ok(function)
    }

    /// The context for the current config: the same as the last call's unless the config
    /// changed, then with a replicator built for the new one.
    pub async fn context(&self) -> Result<Arc<ReplicateContext>, PipelineError> {
        let (config, changed) = self.config.current().await?;
        let unread = report_unread(&self.config, &self.metrics);
        let mut ctx = self.ctx.lock().await;
        if let Some(current) = ctx
            .as_ref()
            .filter(|c| !changed && c.organizations_unread == unread)
        {
            return Ok(current.clone());
        }
        let replicator = build_replicator(config.clone(), self.aws.clone()).await?;
        let fresh = Arc::new(ReplicateContext {
            config,
            engine: Arc::new(replicator),
            results: self.results.clone(),
            metrics: self.metrics.clone(),
            concurrency: self.concurrency,
            organizations_unread: unread,
            ledger: self.ledger.clone(),
            config_fingerprint: config_fingerprint(self.config.document()),
            authorities: Default::default(),
            requeue: self.requeue.clone(),
        });
        *ctx = Some(fresh.clone());
        Ok(fresh)
    }

    /// Handle one SQS batch; `deadline` is the invocation's.
    pub async fn handle(&self, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        // Each job's source registry (authorized against the config later).
        for body in event.records.iter().filter_map(|r| r.body.as_deref()) {
            if let Some(host) = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["source"]["registry"].as_str().map(str::to_owned))
            {
                self.config
                    .note_source(&ferry::config::Registry::from_host(&host));
            }
        }
        let ctx = match self.context().await {
            Ok(ctx) => ctx,
            Err(error) => {
                tracing::error!(error = %error, code = error.code(), "no config to act on: the batch is retried");
                return fail_all(&event);
            }
        };
        replicate(event, Some(Instant::now() + left), &ctx)
            .await
            .response()
    }
}

/// The reconcile function's state.
pub struct ReconcileFunction {
    config: LiveConfig,
    aws: AwsContext,
    /// The replicator whose plan finds the drift, for the current config.
    replicator: tokio::sync::Mutex<Option<Arc<Replicator>>>,
    /// The jobs queue.
    pub queue: SqsJobQueue,
    /// Metrics.
    pub metrics: Metrics,
    /// `FERRY_MAX_JOBS_PER_RUN`.
    pub max_jobs: usize,
    /// The failure ledger and cursor (`FERRY_LEDGER_TABLE`), if set.
    pub ledger: Option<Arc<dyn Ledger>>,
}

impl ReconcileFunction {
    /// From the environment: config, `FERRY_JOBS_QUEUE_URL`, `FERRY_MAX_JOBS_PER_RUN`,
    /// `FERRY_LEDGER_TABLE` (optional), `FERRY_DESTINATIONS_PER_JOB`.
    pub async fn from_env() -> Result<ReconcileFunction, PipelineError> {
        let aws = AwsContext::from_env().await;
        let config = config(&aws).await?;
        let queue = jobs_queue(&aws)?;
        let max_jobs = env_usize(ENV_MAX_JOBS_PER_RUN, DEFAULT_MAX_JOBS_PER_RUN)?;
        let function = ReconcileFunction {
            config,
            ledger: ledger(&aws),
            aws,
            replicator: tokio::sync::Mutex::default(),
            queue,
            metrics: Metrics::stdout(),
            max_jobs,
        };
        function.replicator().await?;
        Ok(function)
    }

    /// The reading replicator for the current config (rebuilt when it changed).
    pub async fn replicator(&self) -> Result<Arc<Replicator>, PipelineError> {
        let (config, changed) = self.config.current().await?;
        report_unread(&self.config, &self.metrics);
        let mut current = self.replicator.lock().await;
        if let Some(r) = current.as_ref().filter(|_| !changed) {
            return Ok(r.clone());
        }
        let config = if config.source_registry().is_some() {
            config
        } else {
            let region = self
                .aws
                .base()
                .region()
                .map(|r| r.to_string())
                .ok_or_else(|| PipelineError::Env {
                    name: "AWS_REGION",
                    message: "not set: reconcile cannot tell which registry it reconciles".into(),
                })?;
            let account = self.aws.caller_account(&region).await.ok_or_else(|| {
                PipelineError::Config(
                    "the config leaves its source to each event, and STS could not name the hub's own account to reconcile"
                        .into(),
                )
            })?;
            crate::reconcile::bind_to_hub(&config, &account, &region)?
        };
        let fresh = Arc::new(build_reading_replicator(config, self.aws.clone()).await?);
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// One run; `run_id` is the invocation's request id.
    pub async fn handle(&self, run_id: &str) -> Result<Reconciled, PipelineError> {
        let replicator = self.replicator().await?;
        let fingerprint = config_fingerprint(self.config.document());
        let pacing = Pacing {
            max_jobs: self.max_jobs,
            ledger: self.ledger.as_deref(),
            fingerprint: &fingerprint,
            now: chrono::Utc::now(),
        };
        reconcile(
            run_id,
            replicator.as_ref(),
            &self.queue,
            &self.metrics,
            &pacing,
        )
        .await
    }
}

/// The ECR registry of an event's envelope (`account`, `region`); anything else is an OCI
/// host name that no ECR source binds to.
fn ecr_registry(account: &str, region: &str) -> ferry::config::Registry {
    ferry::config::Registry::from_host(&format!("{account}.dkr.ecr.{region}.amazonaws.com"))
}
