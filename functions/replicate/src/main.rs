//! The `replicate` Lambda function: SQS batches of jobs in, copies, result events and
//! `batchItemFailures` out. Everything is in `ferry_pipeline`; this only wires tracing and
//! the runtime.

use aws_lambda_events::event::sqs::SqsEvent;
use ferry_pipeline::functions::ReplicateFunction;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_pipeline::logging::init_tracing();
    let function = ReplicateFunction::from_env().await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline();
        Ok::<_, std::convert::Infallible>(function.handle(event.payload, deadline).await)
    }))
    .await
}
