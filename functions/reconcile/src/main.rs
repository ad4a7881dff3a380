//! The `reconcile` Lambda function: on a schedule, compares sources with destinations and
//! enqueues the drift as jobs. Everything is in `ferry_pipeline`; this only wires tracing
//! and the runtime.

use ferry_pipeline::functions::ReconcileFunction;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ferry_pipeline::logging::init_tracing();
    let function = ReconcileFunction::from_env().await?;
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            function
                .handle(&event.context.request_id)
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.code().to_string(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
}
