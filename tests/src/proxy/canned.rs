//! Canned answers: the proxy answers a `GET` of one exact path (query ignored) with a fixed
//! status, content type and body instead of forwarding it, e.g. a hostile `tags/list` that
//! names `../../other/manifests/v1` ([`super::Proxy::answer`]).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    /// Exact request path, e.g. `/v2/app/tags/list`.
    pub path: String,
    /// Status to answer.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body.
    pub body: Vec<u8>,
}

impl Canned {
    /// A `200` JSON answer.
    pub fn json(path: &str, body: &serde_json::Value) -> Canned {
        Canned {
            path: path.to_string(),
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).expect("json"),
        }
    }

    pub(super) fn response(&self) -> Response {
        let mut r = Response::new(Body::from(self.body.clone()));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        if let Ok(v) = HeaderValue::from_str(&self.content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    }
}
