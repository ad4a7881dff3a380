//! The body of a blob upload: the source's bytes, hashed as they pass, resumed with
//! `Range` when the source connection breaks, and held back by one chunk so that a digest
//! or size mismatch aborts the upload before its last byte is sent. The destination then
//! never receives a complete body, so it commits nothing.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::digest::{Digest, Hasher};
use crate::error::Error;

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;
/// Opens the source again from an offset: `Ok(None)` when it cannot resume there.
pub type Reopen =
    Box<dyn FnMut(u64) -> BoxFuture<'static, Result<Option<ByteStream>, Error>> + Send>;

/// Where the verifying stream leaves the reason it aborted, for the caller to report
/// (the HTTP client only sees an aborted body).
pub type FailureSlot = Arc<Mutex<Option<Error>>>;

/// What the stream checks.
pub struct Expect {
    /// Digest the bytes must hash to.
    pub digest: Digest,
    /// Exact size.
    pub size: u64,
    /// Registry and repository, for error context.
    pub registry: String,
    /// Repository.
    pub repository: String,
}

struct State {
    inner: Option<ByteStream>,
    reopen: Reopen,
    resumes_left: usize,
    hasher: Hasher,
    held: Option<Bytes>,
    expect: Expect,
    failure: FailureSlot,
    done: bool,
}

/// Wrap `first` into the verified upload body.
pub fn verified(
    first: ByteStream,
    reopen: Reopen,
    max_resumes: usize,
    expect: Expect,
    failure: FailureSlot,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let state = State {
        inner: Some(first),
        reopen,
        resumes_left: max_resumes,
        hasher: Hasher::new(),
        held: None,
        expect,
        failure,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.step().await {
            Ok(Some(chunk)) => Some((Ok(chunk), st)),
            Ok(None) => None,
            Err(e) => {
                st.done = true;
                let msg = e.to_string();
                if let Ok(mut slot) = st.failure.lock() {
                    *slot = Some(e);
                }
                Some((Err(std::io::Error::other(msg)), st))
            }
        }
    })
}

impl State {
    /// The next chunk to send, `None` at a verified end.
    async fn step(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let next = match self.inner.as_mut() {
                Some(s) => s.next().await,
                None => None,
            };
            match next {
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    self.hasher.update(&chunk);
                    if self.hasher.len() > self.expect.size {
                        return Err(self.mismatch(format!(
                            "the source sent more than the {} bytes the descriptor says",
                            self.expect.size
                        )));
                    }
                    if let Some(prev) = self.held.replace(chunk) {
                        return Ok(Some(prev));
                    }
                }
                Some(Err(e)) => {
                    if self.resumes_left == 0 || !e.is_retryable() {
                        return Err(e);
                    }
                    self.resumes_left -= 1;
                    let offset = self.hasher.len();
                    tracing::debug!(offset, digest = %self.expect.digest, "source broke mid-blob; resuming with Range");
                    match (self.reopen)(offset).await? {
                        Some(s) => self.inner = Some(s),
                        None => return Err(e),
                    }
                }
                None => {
                    self.done = true;
                    self.inner = None;
                    let len = self.hasher.len();
                    let actual = std::mem::take(&mut self.hasher).finish();
                    if len != self.expect.size {
                        return Err(self.mismatch(format!(
                            "{len} bytes, descriptor says {}",
                            self.expect.size
                        )));
                    }
                    if actual != self.expect.digest {
                        return Err(Error::DigestMismatch {
                            registry: self.expect.registry.clone(),
                            repository: self.expect.repository.clone(),
                            expected: self.expect.digest.clone(),
                            actual: actual.to_string(),
                            detail: format!("blob of {len} bytes"),
                        });
                    }
                    return Ok(self.held.take());
                }
            }
        }
    }

    fn mismatch(&self, detail: String) -> Error {
        Error::DigestMismatch {
            registry: self.expect.registry.clone(),
            repository: self.expect.repository.clone(),
            expected: self.expect.digest.clone(),
            actual: "size".into(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn chunks(data: &[u8], size: usize) -> ByteStream {
        let v: Vec<Result<Bytes, Error>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(v).boxed()
    }

    fn expect(data: &[u8]) -> Expect {
        Expect {
            digest: Digest::of(data),
            size: data.len() as u64,
            registry: "r".into(),
            repository: "a".into(),
        }
    }

    fn no_reopen() -> Reopen {
        Box::new(|_| Box::pin(async { Ok(None) }))
    }

    async fn collect(
        s: impl Stream<Item = Result<Bytes, std::io::Error>>,
    ) -> Result<Vec<u8>, std::io::Error> {
        let parts: Vec<Bytes> = s.try_collect().await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn passes_good_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let slot = FailureSlot::default();
        let out = collect(verified(
            chunks(&data, 333),
            no_reopen(),
            0,
            expect(&data),
            slot.clone(),
        ))
        .await;
        assert_eq!(out.expect("ok"), data);
        assert!(slot.lock().expect("lock").is_none());
    }

    #[tokio::test]
    async fn holds_back_the_last_chunk_on_mismatch() {
        let data = vec![7u8; 1000];
        let mut bad = data.clone();
        bad[999] = 8;
        let slot = FailureSlot::default();
        let s = verified(
            chunks(&bad, 100),
            no_reopen(),
            0,
            expect(&data),
            slot.clone(),
        );
        let mut sent = 0usize;
        let mut failed = false;
        futures::pin_mut!(s);
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => sent += b.len(),
                Err(_) => failed = true,
            }
        }
        assert!(failed);
        assert!(
            sent < data.len(),
            "the body must stay incomplete, sent {sent}"
        );
        assert!(matches!(
            *slot.lock().expect("lock"),
            Some(Error::DigestMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn refuses_too_many_bytes() {
        let data = vec![1u8; 100];
        let more = vec![1u8; 150];
        let slot = FailureSlot::default();
        let out = collect(verified(
            chunks(&more, 40),
            no_reopen(),
            0,
            expect(&data),
            slot.clone(),
        ))
        .await;
        assert!(out.is_err());
        assert!(matches!(
            *slot.lock().expect("lock"),
            Some(Error::DigestMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn resumes_from_the_offset() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let broken: ByteStream = {
            let first = Bytes::copy_from_slice(&data[..1234]);
            futures::stream::iter(vec![
                Ok(first),
                Err(Error::Unreachable {
                    registry: "r".into(),
                    message: "reset".into(),
                }),
            ])
            .boxed()
        };
        let full = data.clone();
        let offsets = Arc::new(Mutex::new(Vec::new()));
        let seen = offsets.clone();
        let reopen: Reopen = Box::new(move |off| {
            seen.lock().expect("lock").push(off);
            let rest = full[off as usize..].to_vec();
            Box::pin(async move { Ok(Some(chunks(&rest, 500))) })
        });
        let out = collect(verified(
            broken,
            reopen,
            2,
            expect(&data),
            FailureSlot::default(),
        ))
        .await;
        assert_eq!(out.expect("ok"), data);
        assert_eq!(*offsets.lock().expect("lock"), vec![1234]);
    }
}
