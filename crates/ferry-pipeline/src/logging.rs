//! Tracing for the Lambda functions: level from `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`),
//! JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`, and the engine's [`ferry::LOG_CAPS`] always
//! applied so no SDK response carrying a registry token is ever logged.

use tracing_subscriber::EnvFilter;

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
    let mut filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    for cap in ferry::LOG_CAPS {
        if let Ok(d) = cap.parse() {
            filter = filter.add_directive(d);
        }
    }
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    if json {
        builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(false).init();
    }
}
