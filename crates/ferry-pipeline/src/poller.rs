//! A local stand-in for Lambda's SQS event source mapping, for the demo and the tests: it
//! receives batches, invokes a handler, and deletes only the messages the handler
//! acknowledged, honouring `batchItemFailures` as Lambda does (an invocation error, or a
//! failure naming a message not in the batch, fails the whole batch). Failed messages are
//! left to reappear after the visibility timeout, so the queue's redrive policy applies, or
//! with [`Poller::release_failed`] made visible again at once (ChangeMessageVisibility 0).
//! The sandbox releases them: moto 5.2 redelivers a FIFO group out of order when its
//! messages reappear by timeout (it skips the first message of the group while a later
//! one is still marked in flight), and an explicit release avoids that.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use ferry::config::ReplicationConfig;

use crate::dispatch::dispatch;
use crate::error::{PipelineError, aws_error};
use crate::metrics::Metrics;
use crate::queue::JobQueue;
use crate::replicate::{ReplicateContext, replicate};

/// Something a batch of messages is handed to.
#[async_trait]
pub trait Invoker: Send + Sync {
    /// Handle the batch; `Ok` lists the message ids that failed, `Err` fails them all.
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String>;
}

/// The replicate handler, in process.
pub struct ReplicateInvoker {
    /// Its context.
    pub ctx: ReplicateContext,
    /// The invocation timeout, to give the handler a deadline like Lambda's.
    pub timeout: Option<Duration>,
}

#[async_trait]
impl Invoker for ReplicateInvoker {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let mut event = SqsEvent::default();
        event.records = messages;
        let deadline = self.timeout.map(|t| std::time::Instant::now() + t);
        let report = replicate(event, deadline, &self.ctx).await;
        Ok(failures(report.response()))
    }
}

/// The dispatch handler, in process: each message body is one EventBridge event (as an
/// EventBridge rule with an SQS target delivers it).
pub struct DispatchInvoker<'a> {
    /// The config.
    pub config: &'a ReplicationConfig,
    /// The jobs queue.
    pub queue: &'a dyn JobQueue,
    /// Metrics.
    pub metrics: &'a Metrics,
}

#[async_trait]
impl Invoker for DispatchInvoker<'_> {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let mut failed = Vec::new();
        for m in messages {
            let id = m.message_id.clone().unwrap_or_default();
            let value = serde_json::from_str(m.body.as_deref().unwrap_or_default())
                .unwrap_or(serde_json::Value::Null);
            if let Err(e) = dispatch(value, self.config, self.queue, self.metrics).await {
                tracing::warn!(message_id = %id, error = %e, "dispatch failed");
                failed.push(id);
            }
        }
        Ok(failed)
    }
}

/// A function served by `cargo lambda watch` (or any Lambda runtime API emulator),
/// invoked over HTTP with the whole batch as an SQS event.
pub struct HttpInvoker {
    /// `http://127.0.0.1:9000/2015-03-31/functions/<name>/invocations`.
    pub url: String,
    /// HTTP client.
    pub client: reqwest::Client,
}

#[async_trait]
impl Invoker for HttpInvoker {
    async fn invoke(&self, messages: Vec<SqsMessage>) -> Result<Vec<String>, String> {
        let mut event = SqsEvent::default();
        event.records = messages;
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&event).map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {text}"));
        }
        let parsed: SqsBatchResponse =
            serde_json::from_str(&text).map_err(|e| format!("bad response {text:?}: {e}"))?;
        Ok(failures(parsed))
    }
}

fn failures(r: SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Messages received.
    pub received: usize,
    /// Messages deleted (acknowledged).
    pub acked: usize,
    /// Messages left for redelivery.
    pub failed: usize,
}

impl std::ops::AddAssign for PollStats {
    fn add_assign(&mut self, o: PollStats) {
        self.received += o.received;
        self.acked += o.acked;
        self.failed += o.failed;
    }
}

/// Polls one queue.
#[derive(Clone, Debug)]
pub struct Poller {
    client: aws_sdk_sqs::Client,
    url: String,
    /// Messages per batch (SQS allows 1 to 10).
    pub batch_size: i32,
    /// Long-poll wait per receive.
    pub wait: Duration,
    /// Make failed messages visible again at once instead of after the visibility timeout.
    pub release_failed: bool,
}

impl Poller {
    /// Over a client and a queue URL, batches of ten, one-second long polls.
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Poller {
        Poller {
            client,
            url: url.to_string(),
            batch_size: 10,
            wait: Duration::from_secs(1),
            release_failed: false,
        }
    }

    /// Receive one batch, invoke, delete what was acknowledged.
    pub async fn poll_once(&self, invoker: &dyn Invoker) -> Result<PollStats, PipelineError> {
        let Some(batch) = self.receive(self.wait).await? else {
            return Ok(PollStats::default());
        };
        let outcome = invoker.invoke(batch.messages.clone()).await;
        self.settle(&batch, outcome).await
    }

    /// Run like Lambda's event source mapping with `concurrency` concurrent invocations:
    /// receive a batch whenever an invocation is free, invoke it in its own task, settle it
    /// when it returns; until `stop` is set, then wait for the invocations in flight.
    /// While some are in flight the receives are short polls, 20 ms apart when empty: a
    /// long poll of a FIFO queue whose visible messages all belong to groups in flight
    /// makes moto busy-wait for the whole wait.
    pub async fn run(
        &self,
        invoker: Arc<dyn Invoker>,
        concurrency: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<PollStats, PipelineError> {
        let concurrency = concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut tasks: JoinSet<Result<PollStats, PipelineError>> = JoinSet::new();
        let mut total = PollStats::default();
        let mut first_error = None;
        while !stop.load(Ordering::SeqCst) {
            while let Some(done) = tasks.try_join_next() {
                settle_task(done, &mut total, &mut first_error);
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let busy = !tasks.is_empty();
            let wait = if busy { Duration::ZERO } else { self.wait };
            let batch = match self.receive(wait).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Some(batch) = batch else {
                drop(slot);
                if busy {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            };
            let (poller, invoker) = (self.clone(), invoker.clone());
            tasks.spawn(async move {
                let _slot = slot;
                let outcome = invoker.invoke(batch.messages.clone()).await;
                poller.settle(&batch, outcome).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            settle_task(done, &mut total, &mut first_error);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// One ReceiveMessage with `wait`; `None` when it brought nothing.
    async fn receive(&self, wait: Duration) -> Result<Option<Received>, PipelineError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_error("sqs", "ReceiveMessage", e))?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(None);
        }
        tracing::debug!(queue = %self.url, messages = messages.len(), "batch received");
        Ok(Some(Received {
            handles: messages
                .iter()
                .filter_map(|m| {
                    Some((m.message_id()?.to_string(), m.receipt_handle()?.to_string()))
                })
                .collect(),
            messages: messages.iter().map(|m| to_lambda(m, &self.url)).collect(),
        }))
    }

    /// Delete what the invocation acknowledged; release the rest when asked to.
    async fn settle(
        &self,
        batch: &Received,
        outcome: Result<Vec<String>, String>,
    ) -> Result<PollStats, PipelineError> {
        let handles = &batch.handles;
        let failed: Vec<String> = match outcome {
            Ok(f) if f.iter().all(|id| handles.contains_key(id)) => f,
            Ok(f) => {
                tracing::warn!(
                    ?f,
                    "batchItemFailures names a message not in the batch: the whole batch failed"
                );
                handles.keys().cloned().collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "invocation failed: the whole batch failed");
                handles.keys().cloned().collect()
            }
        };
        let entries = handles
            .iter()
            .filter(|(id, _)| !failed.contains(id))
            .enumerate()
            .map(|(i, (_, handle))| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PipelineError::Aws {
                service: "sqs",
                operation: "DeleteMessageBatch",
                message: e.to_string(),
            })?;
        let acked = entries.len();
        if acked > 0 {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("sqs", "DeleteMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(PipelineError::Aws {
                    service: "sqs",
                    operation: "DeleteMessageBatch",
                    message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                });
            }
        }
        if self.release_failed && !failed.is_empty() {
            self.release(handles, &failed).await?;
        }
        Ok(PollStats {
            received: handles.len(),
            acked,
            failed: failed.len(),
        })
    }

    /// Make the `failed` messages visible again at once (ChangeMessageVisibility 0).
    async fn release(
        &self,
        handles: &HashMap<String, String>,
        failed: &[String],
    ) -> Result<(), PipelineError> {
        let entries = failed
            .iter()
            .filter_map(|id| handles.get(id))
            .enumerate()
            .map(|(i, handle)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PipelineError::Aws {
                service: "sqs",
                operation: "ChangeMessageVisibilityBatch",
                message: e.to_string(),
            })?;
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error("sqs", "ChangeMessageVisibilityBatch", e))?;
        match out.failed().first() {
            Some(f) => Err(PipelineError::Aws {
                service: "sqs",
                operation: "ChangeMessageVisibilityBatch",
                message: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
            }),
            None => Ok(()),
        }
    }

    /// Poll until `idle` consecutive receives come back empty (or `max_polls` in all).
    pub async fn drain(
        &self,
        invoker: &dyn Invoker,
        idle: usize,
        max_polls: usize,
    ) -> Result<PollStats, PipelineError> {
        let mut total = PollStats::default();
        let mut empty = 0;
        for _ in 0..max_polls {
            let s = self.poll_once(invoker).await?;
            total += s;
            empty = if s.received == 0 { empty + 1 } else { 0 };
            if empty >= idle {
                break;
            }
        }
        Ok(total)
    }
}

/// One received batch: the messages as Lambda hands them over, and their receipt handles.
struct Received {
    messages: Vec<SqsMessage>,
    handles: HashMap<String, String>,
}

/// Add a finished invocation's stats; keep the first error.
fn settle_task(
    done: Result<Result<PollStats, PipelineError>, tokio::task::JoinError>,
    total: &mut PollStats,
    first_error: &mut Option<PipelineError>,
) {
    match done {
        Ok(Ok(s)) => *total += s,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "settling a batch failed");
            first_error.get_or_insert(e);
        }
        Err(e) => {
            tracing::error!(error = %e, "an invocation task panicked");
            first_error.get_or_insert(PipelineError::Aws {
                service: "lambda",
                operation: "Invoke",
                message: e.to_string(),
            });
        }
    }
}

/// An SQS API message as Lambda's event source mapping hands it over.
pub fn to_lambda(m: &aws_sdk_sqs::types::Message, queue_url: &str) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = m.message_id().map(str::to_string);
    out.receipt_handle = m.receipt_handle().map(str::to_string);
    out.body = m.body().map(str::to_string);
    out.md5_of_body = m.md5_of_body().map(str::to_string);
    out.attributes = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.event_source = Some("aws:sqs".into());
    out.event_source_arn = Some(queue_url.to_string());
    out
}
