//! The jobs queue: SendMessageBatch to the SQS FIFO queue, ten entries a call, entries that
//! fail retried.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{PipelineError, aws_error};
use crate::job::Job;

/// SendMessageBatch takes at most this many entries.
pub const SEND_BATCH_MAX: usize = 10;

/// Somewhere jobs are sent.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Send every job; fails only when some could not be sent after retries.
    async fn send(&self, jobs: &[Job]) -> Result<(), PipelineError>;

    /// Jobs in the queue not yet done (waiting, in flight or delayed), when the queue can
    /// tell: reconcile enqueues no more than its cap minus this, so a backlog the fleet
    /// has not worked off yet is not enqueued a second time. `None`: unknown.
    async fn backlog(&self) -> Result<Option<usize>, PipelineError> {
        Ok(None)
    }
}

/// The SQS FIFO jobs queue (`FERRY_JOBS_QUEUE_URL`).
#[derive(Clone, Debug)]
pub struct SqsJobQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    attempts: u32,
    /// Destinations a copy job may carry ([`SqsJobQueue::combining`]); 1: one each.
    per_job: usize,
}

impl SqsJobQueue {
    /// Over a client and the queue URL.
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> SqsJobQueue {
        SqsJobQueue {
            client,
            url: url.to_string(),
            attempts: 5,
            per_job: 1,
        }
    }

    /// Copies of one image to several destinations go as one job of up to `per_job`
    /// destinations ([`Job::combine`], at most [`crate::job::MAX_JOB_TARGETS`]): replicate
    /// then reads the image from the source once for all of them. The backlog then counts
    /// each queued message as `per_job` copies (an upper bound: reconcile never enqueues
    /// more than its cap).
    pub fn combining(mut self, per_job: usize) -> SqsJobQueue {
        self.per_job = per_job.clamp(1, crate::job::MAX_JOB_TARGETS);
        self
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn entry(
    id: usize,
    job: &Job,
) -> Result<aws_sdk_sqs::types::SendMessageBatchRequestEntry, PipelineError> {
    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
        .id(id.to_string())
        .message_body(job.encode())
        .message_group_id(job.group_id())
        .message_deduplication_id(job.deduplication_id())
        .build()
        .map_err(|e| PipelineError::Job(e.to_string()))
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send(&self, jobs: &[Job]) -> Result<(), PipelineError> {
        let combined;
        let jobs = if self.per_job > 1 {
            combined = Job::combine(jobs.to_vec(), self.per_job);
            &combined[..]
        } else {
            jobs
        };
        for chunk in jobs.chunks(SEND_BATCH_MAX) {
            self.send_chunk(chunk).await?;
        }
        Ok(())
    }

    /// `GetQueueAttributes`: ApproximateNumberOfMessages + …NotVisible + …Delayed.
    async fn backlog(&self) -> Result<Option<usize>, PipelineError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let names = [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
            A::ApproximateNumberOfMessagesDelayed,
        ];
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("sqs", "GetQueueAttributes", e))?;
        Ok(out
            .attributes()
            .and_then(|a| backlog_of(a, &names))
            .map(|messages| messages.saturating_mul(self.per_job)))
    }
}

/// The sum of the `names` counts in a GetQueueAttributes answer; `None` (unknown) when
/// one of them is not a count, as a broken or hostile endpoint might answer.
fn backlog_of(
    attributes: &std::collections::HashMap<aws_sdk_sqs::types::QueueAttributeName, String>,
    names: &[aws_sdk_sqs::types::QueueAttributeName],
) -> Option<usize> {
    let mut total = 0usize;
    for name in names {
        if let Some(value) = attributes.get(name) {
            total = total.saturating_add(value.parse::<usize>().ok()?);
        }
    }
    Some(total)
}

fn batch_error(message: String) -> PipelineError {
    PipelineError::Aws {
        service: "sqs",
        operation: "SendMessageBatch",
        message,
    }
}

impl SqsJobQueue {
    /// One SendMessageBatch of at most ten jobs (entry ids: their index in `chunk`), then
    /// again for the entries the answer does not list as sent, with backoff. A call that
    /// fails as a whole is final here: the SDK has retried it already (throttling, 5xx,
    /// network), and retries live in one layer. Sender faults (a bad entry) are final too.
    async fn send_chunk(&self, chunk: &[Job]) -> Result<(), PipelineError> {
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| entry(i, &chunk[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("sqs", "SendMessageBatch", e))?;
            for f in out.failed() {
                last = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                if f.sender_fault() {
                    return Err(batch_error(format!("entry {}: {last}", f.id())));
                }
            }
            // Only what the answer lists as sent is done: a failed entry, or one the
            // answer leaves out, is sent again.
            let sent: Vec<&str> = out.successful().iter().map(|s| s.id()).collect();
            pending.retain(|i| !sent.contains(&i.to_string().as_str()));
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(batch_error(format!(
            "{} jobs not sent after {} attempts: {last}",
            pending.len(),
            self.attempts
        )))
    }
}

/// Keeps jobs in memory (unit tests).
#[derive(Clone, Debug, Default)]
pub struct MemoryQueue {
    jobs: std::sync::Arc<std::sync::Mutex<Vec<Job>>>,
    backlog: std::sync::Arc<std::sync::Mutex<Option<usize>>>,
}

impl MemoryQueue {
    /// What was sent so far.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What [`JobQueue::backlog`] answers from now on (`None` by default: unknown).
    pub fn set_backlog(&self, backlog: Option<usize>) {
        *self.backlog.lock().unwrap_or_else(|p| p.into_inner()) = backlog;
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, jobs: &[Job]) -> Result<(), PipelineError> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(jobs);
        Ok(())
    }

    async fn backlog(&self) -> Result<Option<usize>, PipelineError> {
        Ok(*self.backlog.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests;
