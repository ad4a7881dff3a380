//! A stand-in for the AWS Lambda Runtime API, so that a function binary built by the
//! workspace (`target/debug/dispatch`, ...) runs as it does in Lambda: it polls
//! `GET /2018-06-01/runtime/invocation/next`, answers on `.../{id}/response` or
//! `.../{id}/error`, and reports a failed start on `/runtime/init/error`.
//!
//! A stand-in, not a mock of Ferry's code: no Lambda service runs here, and this is the
//! documented protocol every Lambda runtime speaks
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>). `cargo lambda
//! watch` is another emulator of the same API; this one needs no second build of the
//! function with `cargo lambda`'s own features, so a test only runs the binary the
//! workspace build already made.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// What the function answered to one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`: the handler's result.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`: the handler failed.
    Error {
        /// The body's `errorType`, else the `Lambda-Runtime-Function-Error-Type` header.
        error_type: String,
        /// The error document the runtime posted.
        body: Value,
    },
}

#[derive(Default)]
struct Inner {
    pending: VecDeque<(String, Bytes)>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<Value>,
    polls: usize,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    event_ready: Notify,
    init_failed: Notify,
}

/// The Runtime API on a loopback port, serving the invocations [`RuntimeApi::invoke`] is
/// given, one at a time, to whichever process polls it.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    next_id: Mutex<u64>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The deadline given with each invocation.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);

impl RuntimeApi {
    /// Listens on a free loopback port (call inside a Tokio runtime, which must keep
    /// running while the function polls: a multi-threaded one, or awaited calls).
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            address,
            shared,
            server,
            next_id: Mutex::new(0),
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The environment Lambda gives a function (`AWS_LAMBDA_*`), pointing at this API.
    pub fn lambda_env(&self, function_name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Hands `event` to the next poll and waits for the function's answer. Fails when
    /// none comes within `wait`, or when the function reported a failed start.
    pub async fn invoke(&self, event: &Value, wait: Duration) -> Result<Outcome, String> {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            format!("00000000-0000-4000-8000-{:012}", *next)
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.shared.inner.lock().unwrap();
            if let Some(init) = &inner.init_error {
                return Err(format!("the function failed to start: {init}"));
            }
            inner.waiting.insert(id.clone(), tx);
            inner
                .pending
                .push_back((id, Bytes::from(serde_json::to_vec(event).unwrap())));
        }
        self.shared.event_ready.notify_one();
        tokio::select! {
            answer = rx => answer.map_err(|_| "the invocation was dropped".to_string()),
            _ = self.shared.init_failed.notified() => Err(format!(
                "the function failed to start: {}",
                self.init_error().unwrap_or_default()
            )),
            _ = tokio::time::sleep(wait) => Err(format!("no answer within {wait:?}")),
        }
    }

    /// What the function posted to `/runtime/init/error`, if it did.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.inner.lock().unwrap().init_error.clone()
    }

    /// How many times a function asked for its next invocation.
    pub fn polls(&self) -> usize {
        self.shared.inner.lock().unwrap().polls
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        let ready = shared.event_ready.notified();
        {
            let mut inner = shared.inner.lock().unwrap();
            inner.polls += 1;
            if let Some((id, body)) = inner.pending.pop_front() {
                let deadline = SystemTime::now() + INVOCATION_TIMEOUT;
                let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
                let mut headers = HeaderMap::new();
                let mut put = |name: &'static str, value: String| {
                    headers.insert(name, HeaderValue::from_str(&value).unwrap());
                };
                put("lambda-runtime-aws-request-id", id);
                put("lambda-runtime-deadline-ms", deadline_ms.to_string());
                put(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:ferry".into(),
                );
                put(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                );
                put("content-type", "application/json".into());
                return (StatusCode::OK, headers, body).into_response();
            }
            inner.polls -= 1;
        }
        ready.await;
    }
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.inner.lock().unwrap().waiting.remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Response(json_or_text(&body)))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let body = json_or_text(&body);
    // The body's `errorType` is what Lambda returns to the caller; the header is the
    // runtime's own classification (`unhandled` for the Rust runtime).
    let error_type = body["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    answer(&shared, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared.inner.lock().unwrap().init_error = Some(json_or_text(&body));
    shared.init_failed.notify_waiters();
    StatusCode::ACCEPTED
}

/// A function binary started against a [`RuntimeApi`], killed on drop; its output goes
/// to a log file.
pub struct Function {
    child: Child,
    log: std::path::PathBuf,
}

impl Function {
    /// Starts `binary` with the API's Lambda environment plus `env`, writing its output
    /// to `log`.
    pub fn start(
        binary: &Path,
        api: &RuntimeApi,
        function_name: &str,
        env: &[(String, String)],
        log: &Path,
    ) -> std::io::Result<Function> {
        let out = std::fs::File::create(log)?;
        let child = Command::new(binary)
            .envs(api.lambda_env(function_name))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Function {
            child,
            log: log.to_path_buf(),
        })
    }

    /// What the function wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
