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
}

/// The SQS FIFO jobs queue (`FERRY_JOBS_QUEUE_URL`).
#[derive(Clone, Debug)]
pub struct SqsJobQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    attempts: u32,
}

impl SqsJobQueue {
    /// Over a client and the queue URL.
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> SqsJobQueue {
        SqsJobQueue {
            client,
            url: url.to_string(),
            attempts: 5,
        }
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
        for chunk in jobs.chunks(SEND_BATCH_MAX) {
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
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        last = aws_error("sqs", "SendMessageBatch", e).to_string();
                        continue;
                    }
                };
                let mut retry = Vec::new();
                for f in out.failed() {
                    last = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                    // Sender faults (a bad entry) will not succeed on a retry.
                    if f.sender_fault() {
                        return Err(PipelineError::Aws {
                            service: "sqs",
                            operation: "SendMessageBatch",
                            message: last,
                        });
                    }
                    if let Ok(i) = f.id().parse::<usize>() {
                        retry.push(i);
                    }
                }
                pending = retry;
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(PipelineError::Aws {
                    service: "sqs",
                    operation: "SendMessageBatch",
                    message: format!("{} jobs not sent: {last}", pending.len()),
                });
            }
        }
        Ok(())
    }
}

/// Keeps jobs in memory (unit tests).
#[derive(Clone, Debug, Default)]
pub struct MemoryQueue {
    jobs: std::sync::Arc<std::sync::Mutex<Vec<Job>>>,
}

impl MemoryQueue {
    /// What was sent so far.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
}
