//! A deadline for a request's whole body. The header-read timeout (`tls::HEADER_READ_TIMEOUT`) stops a client
//! that trickles its headers; this stops one that sends headers promptly and then its body a byte at a
//! time (or never its last byte), holding a connection — and up to the body limit in memory — for as long
//! as it likes. When the deadline passes, reading the body fails: the extractor answers 400 and the
//! connection is closed with its body unread.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::Sleep;

/// Why the body stopped.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (http.body_read_timeout_secs)")]
pub struct BodyTooSlow(Duration);

/// Puts a deadline of `limit` from now on the body of `request`; a `limit` too far off for the clock to
/// represent puts none.
#[must_use]
pub fn limit(request: Request, limit: Duration) -> Request {
    // Checked: `http.body_read_timeout_secs` is bounded at load, but an unrepresentable instant would panic in
    // every request, and a deadline that far off is no deadline.
    let deadline = tokio::time::Instant::now().checked_add(limit);
    request.map(|body| Body::new(Deadline { body, limit, deadline, sleep: None }))
}

struct Deadline {
    body: Body,
    limit: Duration,
    /// `None`: no deadline (see [`limit`]).
    deadline: Option<tokio::time::Instant>,
    /// Armed at the first read that has to wait: a body that has arrived with its headers (a webhook, most
    /// often) is read without a timer ever being registered.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let Some(deadline) = this.deadline else { return Poll::Pending };
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_read_whole() {
        let request = Request::new(Body::from("hello"));
        let body = super::limit(request, Duration::from_secs(5)).into_body();
        assert_eq!(axum::body::to_bytes(body, usize::MAX).await.unwrap().as_ref(), b"hello");
    }

    #[tokio::test]
    async fn a_limit_past_what_the_clock_holds_is_no_deadline() {
        for limit in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            let request = Request::new(Body::from("hello"));
            let body = super::limit(request, limit).into_body();
            assert_eq!(axum::body::to_bytes(body, usize::MAX).await.unwrap().as_ref(), b"hello");
            // A body that keeps the reader waiting is read whole too, without a timer.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
            let chunks =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
            let body = super::limit(Request::new(Body::from_stream(chunks)), limit).into_body();
            let read = tokio::spawn(axum::body::to_bytes(body, usize::MAX));
            tx.send(Ok(bytes::Bytes::from_static(b"later"))).await.unwrap();
            drop(tx);
            assert_eq!(read.await.unwrap().unwrap().as_ref(), b"later");
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        // One chunk, then nothing: the stream never ends.
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"par"))])
            .chain(futures_util::stream::pending());
        let request = Request::new(Body::from_stream(chunks));
        let body = super::limit(request, Duration::from_millis(100)).into_body();
        let err = axum::body::to_bytes(body, usize::MAX).await.expect_err("the stalled body must fail");
        assert!(err.to_string().contains("did not arrive within"), "{err}");
    }
}
