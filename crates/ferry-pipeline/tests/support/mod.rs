//! The local pipeline sandbox shared by the end-to-end tests and the demo: moto (SQS FIFO,
//! EventBridge, STS, ECR control plane), three ECR-shaped docker-registry instances, the
//! EventBridge rules routed to SQS as `infra/template.yaml` routes them, and the real
//! dispatch and replicate handlers driven by the local poller.
#![allow(dead_code, unused_imports)] // Each test binary uses its own part.

mod calls;
pub(crate) mod conflict;
mod events;
mod registries;

pub(crate) use events::{detail, push_details};
pub(crate) use registries::Registries;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use aws_lambda_events::event::sqs::SqsMessage;
use ferry::aws::AwsContext;
use ferry::config::ReplicationConfig;
use ferry::ecr::EcrControl;
use ferry::registry::ClientOptions;
use ferry::replicate::Replicator;
use ferry::setup::ClientSetup;
use ferry::{Copier, CopyOptions};
use ferry_e2e::{EcrRegistry, Moto};
use ferry_pipeline::Metrics;
use ferry_pipeline::dispatch::Dispatched;
use ferry_pipeline::poller::{DispatchInvoker, Invoker, PollStats, Poller, ReplicateInvoker};
use ferry_pipeline::queue::SqsJobQueue;
use ferry_pipeline::replicate::{BatchReport, Engine, ReplicateContext, replicate};
use ferry_pipeline::result::{EventBridgePublisher, ReplicationResult};

/// Account A: moto's default account, so events published with the default credentials
/// carry it in their envelope.
pub(crate) const ACCOUNT_A: &str = "123456789012";
/// Account B, written to through an assumed role.
pub(crate) const ACCOUNT_B: &str = "222222222222";
/// Role Ferry assumes in account B.
pub(crate) const ROLE_B: &str = "arn:aws:iam::222222222222:role/ferry-writer";
/// The access keys dispatch and replicate sign with (moto puts a key it did not issue in
/// its default account, account A), so that a recording tells their calls apart from each
/// other's and from the harness's (`testing`).
pub(crate) const DISPATCH_KEY: &str = "dispatch";
/// See [`DISPATCH_KEY`].
pub(crate) const REPLICATE_KEY: &str = "replicate";

/// Knobs of a sandbox.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Extra fields merged into the replication rule (`untagged`, `deletes`, filters).
    pub rule: Value,
    /// Jobs queue visibility timeout (seconds): how soon a failed job comes back.
    pub visibility_timeout: u32,
    /// Registry client retries (kept low so injected faults surface quickly).
    pub client_retries: usize,
    /// Concurrency of replicate (FIFO groups of one batch at once).
    pub concurrency: usize,
    /// Extra `registries` entries of the config (OCI destinations' endpoints).
    pub registries: serde_json::Map<String, Value>,
    /// Destinations one copy job carries (`FERRY_DESTINATIONS_PER_JOB`); 1: one each.
    pub destinations_per_job: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rule: json!({}),
            visibility_timeout: 2,
            client_retries: 1,
            concurrency: 4,
            registries: serde_json::Map::new(),
            destinations_per_job: 1,
        }
    }
}

/// Everything running, torn down on drop.
pub(crate) struct Sandbox {
    /// The runtime the async parts run on.
    pub rt: tokio::runtime::Runtime,
    /// moto.
    pub moto: Moto,
    /// Source: account A, us-east-1.
    pub src: EcrRegistry,
    /// Destination: account A, eu-west-1.
    pub eu: EcrRegistry,
    /// Destination: account B, us-west-2 (through `ROLE_B`).
    pub west: EcrRegistry,
    /// SDK config pointing at moto (us-east-1, account A).
    pub sdk: SdkConfig,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// SQS client of dispatch (the jobs it sends).
    pub dispatch_sqs: aws_sdk_sqs::Client,
    /// SDK config of replicate (its engine and result events).
    pub replicate_sdk: SdkConfig,
    /// Where the ECR Image Action rule delivers (stands in for the dispatch function's
    /// EventBridge invocation).
    pub events_queue: String,
    /// The FIFO jobs queue.
    pub jobs_queue: String,
    /// Its dead-letter queue.
    pub jobs_dlq: String,
    /// Where the result bus's rule delivers (a subscriber's view).
    pub results_queue: String,
    /// The result bus.
    pub result_bus: String,
    /// The replication config (endpoints of the local registries included).
    pub config: Arc<ReplicationConfig>,
    /// The config JSON.
    pub config_json: Value,
    /// Metrics of every handler.
    pub metrics: Metrics,
    /// The engine.
    pub replicator: Replicator,
    /// Options used.
    pub options: Options,
}

/// The rule of `infra/template.yaml`'s `EcrImageActionRule`.
pub(crate) fn ecr_rule_pattern() -> Value {
    json!({
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action", "ECR Referrer Action"],
        "detail": {"result": ["SUCCESS"], "action-type": ["PUSH", "DELETE"]}
    })
}

impl Sandbox {
    /// Start with default options.
    pub(crate) fn start() -> Result<Sandbox> {
        Self::start_with(Options::default(), &BTreeMap::new())
    }

    /// Start; `routes` sends a destination's ECR host to another URL (a fault proxy).
    pub(crate) fn start_with(
        options: Options,
        routes: &BTreeMap<String, String>,
    ) -> Result<Sandbox> {
        Self::start_over(options, Registries::start()?, routes)
    }

    /// Start over registries already running (proxies may stand in front of them: `routes`
    /// sends an ECR host to another URL).
    pub(crate) fn start_over(
        options: Options,
        registries: Registries,
        routes: &BTreeMap<String, String>,
    ) -> Result<Sandbox> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let moto = Moto::start_recording()?;
        let Registries { src, eu, west } = registries;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let sdk = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(moto.endpoint())
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .load(),
        );
        let mut registries = serde_json::Map::new();
        for r in [&src, &eu, &west] {
            let url = routes
                .get(&r.ecr_host())
                .cloned()
                .unwrap_or_else(|| r.registry().url());
            registries.insert(r.ecr_host(), json!({"endpoint": url, "plainHttp": true}));
        }
        registries.extend(options.registries.clone());
        let mut rule = json!({"destinations": [
            {"registryId": ACCOUNT_A, "region": "eu-west-1"},
            {"registryId": ACCOUNT_B, "region": "us-west-2", "roleArn": ROLE_B, "externalId": "ferry-test"}
        ]});
        for (k, v) in options.rule.as_object().into_iter().flatten() {
            rule[k] = v.clone();
        }
        let config_json = json!({
            "source": {"registryId": ACCOUNT_A, "region": "us-east-1"},
            "registries": registries,
            "rules": [rule],
        });
        let config = Arc::new(ferry_pipeline::settings::parse_config(
            &config_json.to_string(),
            "sandbox",
        )?);
        let replicate_sdk = signing_as(&sdk, REPLICATE_KEY);
        let aws = AwsContext::new(replicate_sdk.clone());
        let setup = ClientSetup {
            options: ClientOptions {
                max_retries: options.client_retries,
                min_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
                ..ClientOptions::default()
            },
            ..ClientSetup::default()
        };
        let client = rt.block_on(setup.build_for_config(&config, Some(aws.clone())))?;
        let replicator = Replicator::new(
            Copier::new(client, CopyOptions::default()),
            Some(EcrControl::new(aws)),
            config.clone(),
        );
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dispatch_sqs = aws_sdk_sqs::Client::new(&signing_as(&sdk, DISPATCH_KEY));
        let (events_queue, jobs_queue, jobs_dlq, results_queue, result_bus) =
            rt.block_on(wire(&sdk, &sqs, options.visibility_timeout))?;
        Ok(Sandbox {
            rt,
            moto,
            src,
            eu,
            west,
            sdk,
            sqs,
            dispatch_sqs,
            replicate_sdk,
            events_queue,
            jobs_queue,
            jobs_dlq,
            results_queue,
            result_bus,
            config,
            config_json,
            metrics: Metrics::memory(),
            replicator,
            options,
        })
    }

    /// Every destination of the config.
    pub(crate) fn destinations(&self) -> [&EcrRegistry; 2] {
        [&self.eu, &self.west]
    }

    /// The SQS jobs queue as dispatch and reconcile send to it (with dispatch's key).
    pub(crate) fn job_queue(&self) -> SqsJobQueue {
        SqsJobQueue::new(self.dispatch_sqs.clone(), &self.jobs_queue)
            .combining(self.options.destinations_per_job)
    }

    /// Send raw entries to the jobs queue (tests that replay or forge messages).
    pub(crate) fn send_jobs(
        &self,
        entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>,
    ) -> Result<()> {
        self.rt.block_on(
            self.sqs
                .send_message_batch()
                .queue_url(&self.jobs_queue)
                .set_entries(Some(entries))
                .send(),
        )?;
        Ok(())
    }

    /// The replicate context over the sandbox's engine (or another) and result bus.
    pub(crate) fn replicate_ctx(&self, engine: Option<Arc<dyn Engine>>) -> ReplicateContext {
        ReplicateContext {
            config: self.config.clone(),
            engine: engine.unwrap_or_else(|| Arc::new(self.replicator.clone())),
            results: Arc::new(EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&self.replicate_sdk),
                &self.result_bus,
            )),
            metrics: self.metrics.clone(),
            concurrency: self.options.concurrency,
            organizations_unread: Vec::new(),
            ledger: None,
            config_fingerprint: String::new(),
            authorities: Default::default(),
            // As the function: the part of a job for several destinations to try again
            // goes back with replicate's own key.
            requeue: Some(Arc::new(SqsJobQueue::new(
                aws_sdk_sqs::Client::new(&self.replicate_sdk),
                &self.jobs_queue,
            ))),
        }
    }

    /// Publish ECR Image Action events to the default bus (as ECR would); their ids.
    pub(crate) fn publish(&self, details: &[Value]) -> Result<Vec<String>> {
        self.publish_as("ECR Image Action", details)
    }

    /// Publish events of `detail_type` (`ECR Referrer Action`, ...) to the default bus.
    pub(crate) fn publish_as(&self, detail_type: &str, details: &[Value]) -> Result<Vec<String>> {
        let eb = aws_sdk_eventbridge::Client::new(&self.sdk);
        let mut ids = Vec::new();
        for chunk in details.chunks(10) {
            let entries = chunk
                .iter()
                .map(|d| {
                    PutEventsRequestEntry::builder()
                        .source("aws.ecr")
                        .detail_type(detail_type)
                        .detail(d.to_string())
                        .build()
                })
                .collect();
            let out = self
                .rt
                .block_on(eb.put_events().set_entries(Some(entries)).send())?;
            anyhow::ensure!(out.failed_entry_count() == 0, "PutEvents failed: {out:?}");
            ids.extend(
                out.entries()
                    .iter()
                    .filter_map(|e| e.event_id().map(str::to_string)),
            );
        }
        Ok(ids)
    }

    /// Publish the push event of `f` (its tag `v1`-style tag and digest) and drain it through
    /// dispatch.
    pub(crate) fn dispatch_push(&self, f: &ferry_e2e::fixtures::Fixture) -> Result<PollStats> {
        self.publish(&[detail(
            "PUSH",
            &f.repo,
            Some(&f.tag),
            &f.digest,
            &f.media_type,
        )])?;
        self.run_dispatch()
    }

    /// Drain the events queue through the dispatch handler.
    pub(crate) fn run_dispatch(&self) -> Result<PollStats> {
        let queue = self.job_queue();
        let invoker = MotoEnvelope(DispatchInvoker {
            config: &self.config,
            queue: &queue,
            metrics: &self.metrics,
        });
        let poller = Poller::new(self.sqs.clone(), &self.events_queue);
        Ok(self.rt.block_on(poller.drain(&invoker, 1, 100))?)
    }

    /// Dispatch one raw event directly (as a Lambda invocation would).
    pub(crate) fn dispatch_raw(
        &self,
        event: Value,
    ) -> Result<Dispatched, ferry_pipeline::PipelineError> {
        let queue = self.job_queue();
        self.rt.block_on(ferry_pipeline::dispatch::dispatch(
            event,
            &self.config,
            &queue,
            &self.metrics,
        ))
    }

    /// Dispatch one raw event as the dispatch function does when the config has gates:
    /// a reading replicator with dispatch's credentials judges them, HELD and BLOCKED
    /// results go to the result bus.
    pub(crate) fn dispatch_gated_raw(
        &self,
        event: Value,
    ) -> Result<Dispatched, ferry_pipeline::PipelineError> {
        let queue = self.job_queue();
        // As the dispatch function builds them: a reading replicator and a publisher with
        // dispatch's own credentials (its calls are recorded as DispatchRole's).
        let dispatch_sdk = signing_as(&self.sdk, DISPATCH_KEY);
        let results = EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&dispatch_sdk),
            &self.result_bus,
        );
        let keeper = self
            .rt
            .block_on(ferry_pipeline::settings::build_reading_replicator(
                self.config.clone(),
                AwsContext::new(dispatch_sdk),
            ))?;
        let authority = ferry_pipeline::authority::Authority::new(self.config.clone());
        let stage = ferry_pipeline::dispatch::GateStage {
            keeper: &keeper,
            results: Some(&results),
        };
        self.rt.block_on(ferry_pipeline::dispatch::dispatch_gated(
            event,
            &authority,
            &queue,
            &self.metrics,
            Some(stage),
        ))
    }

    /// Drain the jobs queue through the replicate handler, waiting out visibility
    /// timeouts of failed jobs (`idle` empty receives end it).
    pub(crate) fn run_replicate(&self, idle: usize) -> Result<PollStats> {
        let invoker = ReplicateInvoker {
            ctx: self.replicate_ctx(None),
            timeout: Some(Duration::from_secs(300)),
        };
        let mut poller = Poller::new(self.sqs.clone(), &self.jobs_queue);
        poller.release_failed = true;
        Ok(self.rt.block_on(poller.drain(&invoker, idle, 200))?)
    }

    /// Receive one batch from the jobs queue and run replicate on it, returning the
    /// handler's report and deleting only the acknowledged messages.
    pub(crate) fn replicate_batch(&self, engine: Option<Arc<dyn Engine>>) -> Result<BatchReport> {
        let ctx = self.replicate_ctx(engine);
        self.rt.block_on(async {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.jobs_queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await?;
            let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
            event.records = out
                .messages()
                .iter()
                .map(|m| ferry_pipeline::poller::to_lambda(m, &self.jobs_queue))
                .collect();
            let report = replicate(event, None, &ctx).await;
            let failed: Vec<String> = report
                .response()
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            for m in out.messages() {
                let handle = m.receipt_handle().unwrap_or_default();
                if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                    // Released at once, as the sandbox's poller does (see `Poller::release_failed`).
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&self.jobs_queue)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await?;
                } else {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.jobs_queue)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
            anyhow::Ok(report)
        })
    }

    /// Result events a subscriber of the result bus received so far (drains the queue).
    pub(crate) fn results(&self) -> Result<Vec<ReplicationResult>> {
        let mut out = Vec::new();
        for body in self.drain_queue(&self.results_queue)? {
            let v: Value = serde_json::from_str(&body)?;
            anyhow::ensure!(
                v["source"] == "ferry" && v["detail-type"] == "Ferry Image Replication",
                "unexpected event {v}"
            );
            out.push(serde_json::from_value(v["detail"].clone())?);
        }
        out.sort_by_key(|r: &ReplicationResult| r.completed_at);
        Ok(out)
    }

    /// Receive and delete every message of a queue; the bodies.
    pub(crate) fn drain_queue(&self, url: &str) -> Result<Vec<String>> {
        self.rt.block_on(async {
            let mut bodies = Vec::new();
            loop {
                let out = self
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(0)
                    .send()
                    .await?;
                if out.messages().is_empty() {
                    return Ok(bodies);
                }
                for m in out.messages() {
                    bodies.push(m.body().unwrap_or_default().to_string());
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await?;
                }
            }
        })
    }

    /// Messages in a queue, visible or in flight.
    pub(crate) fn queue_depth(&self, url: &str) -> Result<usize> {
        let out = self.rt.block_on(
            self.sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send(),
        )?;
        let attrs = out.attributes().ok_or_else(|| anyhow!("no attributes"))?;
        Ok([
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| attrs.get(k).and_then(|v| v.parse::<usize>().ok()))
        .sum())
    }
}

/// moto 5.2 leaves `account` out of the events its rules deliver to SQS (EventBridge always
/// sets it): put it back, as moto's own account, before the handler sees the event.
pub(crate) struct MotoEnvelope<I>(pub I);

#[async_trait::async_trait]
impl<I: Invoker> Invoker for MotoEnvelope<I> {
    async fn invoke(&self, mut messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        for m in &mut messages {
            if let Some(mut v) = m
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                && v.get("account").is_none()
                && v.is_object()
            {
                v["account"] = json!(ACCOUNT_A);
                m.body = Some(v.to_string());
            }
        }
        self.0.invoke(messages).await
    }
}

/// `sdk` signing with access key `key`.
fn signing_as(sdk: &SdkConfig, key: &str) -> SdkConfig {
    let creds = aws_sdk_sqs::config::Credentials::new(key, "testing", None, None, "sandbox");
    sdk.to_builder()
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(creds))
        .build()
}

async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attrs: &[(QueueAttributeName, String)],
) -> Result<(String, String)> {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attrs {
        req = req.attributes(k.clone(), v);
    }
    let url = req
        .send()
        .await?
        .queue_url()
        .context("queue url")?
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("queue arn")?;
    Ok((url, arn))
}

/// Queues and rules, as `infra/template.yaml` has them (the dispatch function's place taken
/// by a queue the poller reads).
async fn wire(
    sdk: &SdkConfig,
    sqs: &aws_sdk_sqs::Client,
    visibility: u32,
) -> Result<(String, String, String, String, String)> {
    let fifo = |extra: &[(QueueAttributeName, String)]| {
        let mut v = vec![
            (QueueAttributeName::FifoQueue, "true".to_string()),
            (
                QueueAttributeName::ContentBasedDeduplication,
                "false".to_string(),
            ),
        ];
        v.extend_from_slice(extra);
        v
    };
    let (dlq, dlq_arn) = queue(sqs, "ferry-jobs-dlq.fifo", &fifo(&[])).await?;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string();
    let (jobs, _) = queue(
        sqs,
        "ferry-jobs.fifo",
        &fifo(&[
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ]),
    )
    .await?;
    let (events, events_arn) = queue(sqs, "ferry-ecr-events", &[]).await?;
    let (results, results_arn) = queue(sqs, "ferry-results", &[]).await?;
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    eb.put_rule()
        .name("ferry-ecr-image-action")
        .event_pattern(ecr_rule_pattern().to_string())
        .send()
        .await?;
    eb.put_targets()
        .rule("ferry-ecr-image-action")
        .targets(Target::builder().id("dispatch").arn(events_arn).build()?)
        .send()
        .await?;
    let bus = "ferry-results";
    eb.create_event_bus().name(bus).send().await?;
    eb.put_rule()
        .name("ferry-results-subscriber")
        .event_bus_name(bus)
        .event_pattern(
            json!({"source": ["ferry"], "detail-type": ["Ferry Image Replication"]}).to_string(),
        )
        .send()
        .await?;
    eb.put_targets()
        .rule("ferry-results-subscriber")
        .event_bus_name(bus)
        .targets(
            Target::builder()
                .id("subscriber")
                .arn(results_arn)
                .build()?,
        )
        .send()
        .await?;
    Ok((events, jobs, dlq, results, bus.to_string()))
}
