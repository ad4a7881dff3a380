//! Tracing for the Lambda functions: level from `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`),
//! JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, and the engine's cap ([`ferry::log_allowed`])
//! always applied, so no SDK response carrying a registry token is ever logged. The cap
//! only lowers: at `LogLevel=info` no crate logs DEBUG.

use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::prelude::*;

/// Install the global subscriber (once, in `main`).
pub fn init_tracing() {
    let base = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".to_string());
    // A refused certificate is reported as the job's `tls-untrusted` error; the platform
    // verifier's own ERROR lines only repeat it (unless asked for by name).
    let base = if base.contains("rustls_platform_verifier") {
        base
    } else {
        format!("{base},rustls_platform_verifier=off")
    };
    let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    if json {
        let layer = layer.json().with_current_span(false).with_span_list(false);
        tracing_subscriber::registry()
            .with(
                layer
                    .with_filter(filter)
                    .with_filter(filter_fn(ferry::log_allowed)),
            )
            .init();
    } else {
        tracing_subscriber::registry()
            .with(
                layer
                    .with_ansi(false)
                    .with_filter(filter)
                    .with_filter(filter_fn(ferry::log_allowed)),
            )
            .init();
    }
}
