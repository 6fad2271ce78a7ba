//! The retry policy, with a manual clock: nothing here waits.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use wabridge_cloud::time::ManualClock;
use wabridge_cloud::{Client, CloudError, RetryPolicy};
use wabridge_types::PhoneNumberId;
use wabridge_types::send::OutboundMessage;

use crate::harness::{MockServer, PHONE_ID, TOKEN};

fn ok() -> serde_json::Value {
    json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.OK"}]})
}

fn graph(code: i64) -> serde_json::Value {
    json!({"error": {"message": format!("(#{code})"), "type": "OAuthException", "code": code, "fbtrace_id": "T"}})
}

async fn send(client: &Client) -> Result<wabridge_types::response::SendResponse, CloudError> {
    client.send_message(&PhoneNumberId::new(PHONE_ID), &OutboundMessage::text("16505551234", "hi")).await
}

/// A Graph error as the client returns it, without a `Retry-After` header.
fn graph_error(code: i64) -> CloudError {
    let error = Box::new(wabridge_types::GraphError::new(code, "x"));
    CloudError::Graph {
        status: wabridge_types::error::http_status_for(code),
        error,
        retry_after_header: None,
    }
}

fn client(server: &MockServer, policy: RetryPolicy) -> (Client, ManualClock) {
    let clock = ManualClock::new();
    let client = server.client().retry(policy).sleeper(clock.clone()).clock(clock.clone()).build().unwrap();
    (client, clock)
}

#[tokio::test]
async fn pair_limit_is_retried_after_at_least_six_seconds() {
    let server = MockServer::start().await;
    server.reply(400, &graph(131056)).reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default().with_jitter(1.0));
    send(&client).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1);
    assert!(sleeps[0] >= Duration::from_secs(6), "{sleeps:?}");
}

#[tokio::test]
async fn throughput_and_server_errors_are_retried() {
    let server = MockServer::start().await;
    server
        .reply(400, &graph(130429))
        .reply(503, &graph(2))
        .reply_raw(500, b"internal error".to_vec(), "text/plain")
        .reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default().with_max_attempts(5));
    send(&client).await.unwrap();
    assert_eq!(server.requests().len(), 4);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    assert!(sleeps[0] >= Duration::from_secs(1), "130429 waits at least its 1 s: {sleeps:?}");
    assert!(sleeps[1] >= Duration::from_secs(5), "code 2 waits at least its 5 s: {sleeps:?}");
}

#[tokio::test]
async fn permanent_errors_are_never_retried() {
    for code in [100, 131026, 131047, 132001, 368] {
        let server = MockServer::start().await;
        server.reply(400, &graph(code)).reply(200, &ok());
        let (client, clock) = client(&server, RetryPolicy::default());
        let err = send(&client).await.unwrap_err();
        assert_eq!(err.code(), Some(code));
        assert_eq!(server.requests().len(), 1, "code {code} was retried");
        assert!(clock.sleeps().is_empty());
    }
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let server = MockServer::start().await;
    for _ in 0..5 {
        server.reply(500, &graph(131000));
    }
    let (client, clock) = client(&server, RetryPolicy::default().with_max_attempts(3));
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.code(), Some(131000));
    assert_eq!(server.requests().len(), 3);
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn without_a_policy_nothing_is_retried() {
    let server = MockServer::start().await;
    server.reply(400, &graph(130429)).reply(200, &ok());
    let client = server.client().build().unwrap();
    assert_eq!(send(&client).await.unwrap_err().code(), Some(130429));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_class_delay_beyond_max_delay_is_left_to_the_caller() {
    let server = MockServer::start().await;
    server.reply(400, &graph(80007)).reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default());
    assert_eq!(send(&client).await.unwrap_err().code(), Some(80007));
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn max_elapsed_bounds_the_time_spent() {
    let server = MockServer::start().await;
    for _ in 0..5 {
        server.reply(400, &graph(131056));
    }
    let policy = RetryPolicy::default().with_max_attempts(10).with_max_elapsed(Duration::from_secs(10));
    let (client, clock) = client(&server, policy);
    send(&client).await.unwrap_err();
    // 6 s slept; another ≥ 6 s would pass the 10 s budget.
    assert_eq!(clock.sleeps().len(), 1);
    assert_eq!(server.requests().len(), 2);
}

/// A client that gives up on an answer after a second (the late replies below come after 5), with the
/// default retry policy and a manual sleeper.
fn impatient_client(server: &MockServer) -> (Client, ManualClock) {
    let clock = ManualClock::new();
    let client = server
        .client()
        .request_timeout(Duration::from_secs(1))
        .retry(RetryPolicy::default())
        .sleeper(clock.clone())
        .build()
        .unwrap();
    (client, clock)
}

#[tokio::test]
async fn timeouts_of_reads_are_retried() {
    let info = json!({"messaging_product": "whatsapp", "url": "https://lookaside.example/x", "mime_type": "image/jpeg",
        "sha256": "abc", "file_size": 10, "id": "1"});
    let server = MockServer::start().await;
    server.reply_late(Duration::from_secs(5), 200, &info).reply(200, &info);
    let (client, clock) = impatient_client(&server);
    client.media_info(&wabridge_types::ids::MediaId::new("1")).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(clock.sleeps().len(), 1);
}

/// A send whose answer is lost (a timeout after Meta accepted it, a bare 502) is not sent again: the user
/// would get the message twice. The error says the outcome is unknown.
#[tokio::test]
async fn sends_of_unknown_outcome_are_not_retried() {
    let server = MockServer::start().await;
    server.reply_late(Duration::from_secs(5), 200, &ok()).reply(200, &ok());
    let (timing_out, clock) = impatient_client(&server);
    let err = send(&timing_out).await.unwrap_err();
    assert!(matches!(err, CloudError::Http(_)) && err.outcome_unknown(), "{err}");
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());

    let server = MockServer::start().await;
    server.reply_raw(502, b"bad gateway".to_vec(), "text/plain").reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default());
    let err = send(&client).await.unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn connection_failures_are_retried_up_to_the_limit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let clock = ManualClock::new();
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .access_token(TOKEN)
        .no_proxy()
        .retry(RetryPolicy::default().with_max_attempts(3))
        .sleeper(clock.clone())
        .build()
        .unwrap();
    assert!(matches!(send(&client).await.unwrap_err(), CloudError::Http(_)));
    assert_eq!(clock.sleeps().len(), 2);
}

#[test]
fn backoff_grows_exponentially_up_to_max_delay() {
    let policy = RetryPolicy::default()
        .with_base(Duration::from_secs(2))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter(0.0)
        .with_max_attempts(10);
    // HTTP 429 without a Graph body: throughput class, 1 s floor.
    let err = CloudError::Status { status: 429, snippet: String::new(), retry_after_header: None };
    let delays: Vec<_> = (1..=5).map(|n| policy.delay_for(n, &err, 0.5).unwrap().as_secs()).collect();
    assert_eq!(delays, [2, 4, 8, 10, 10]);
    assert_eq!(policy.delay_for(10, &err, 0.5), None);
}

proptest! {
    /// Whatever the attempt, jitter and draw: never below the class's delay, never above max_delay.
    #[test]
    fn delays_respect_the_class_floor(attempt in 1u32..8, jitter in 0.0f64..=1.0, draw in 0.0f64..1.0,
                                      base_ms in 1u64..5_000) {
        let policy = RetryPolicy::default()
            .with_base(Duration::from_millis(base_ms))
            .with_jitter(jitter)
            .with_max_attempts(10);
        let pair = graph_error(131056);
        let d = policy.delay_for(attempt, &pair, draw).unwrap();
        prop_assert!(d >= Duration::from_secs(6));
        prop_assert!(d <= policy.max_delay);
        let backoff = Duration::from_millis(base_ms).saturating_mul(1 << (attempt - 1)).min(policy.max_delay);
        prop_assert!(d >= backoff.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
    }
}

/// The wait grows from the class's delay instead of staying at it: 131056 follows Meta's 4^x seconds from
/// the 6-s pair interval (6, 16, 64 s), a 5xx doubles from its 5 s.
#[tokio::test]
async fn waits_grow_from_the_class_delay() {
    let server = MockServer::start().await;
    for _ in 0..3 {
        server.reply(400, &graph(131056));
    }
    server.reply(200, &ok());
    let policy = RetryPolicy::default().with_jitter(0.0).with_max_delay(Duration::from_secs(600));
    let (pair_client, clock) = client(&server, policy);
    send(&pair_client).await.unwrap();
    assert_eq!(server.requests().len(), 4);
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [6, 16, 64]);

    let server = MockServer::start().await;
    for _ in 0..3 {
        server.reply(503, &graph(2));
    }
    server.reply(200, &ok());
    let policy = RetryPolicy::default().with_jitter(0.0);
    let (client, clock) = client(&server, policy);
    send(&client).await.unwrap();
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [5, 10, 20]);
}

#[test]
fn successive_delays_grow_and_stop_at_max_delay() {
    let policy = RetryPolicy::default().with_jitter(0.0).with_max_attempts(10);
    for code in [131056, 130429, 2, 131000] {
        let err = graph_error(code);
        let delays: Vec<Duration> = (1..=8).map(|n| policy.delay_for(n, &err, 0.0).unwrap()).collect();
        for pair in delays.windows(2) {
            assert!(pair[1] > pair[0] || pair[1] == policy.max_delay, "code {code}: {delays:?}");
        }
        assert_eq!(delays[7], policy.max_delay, "code {code}: {delays:?}");
        assert!(delays[0] >= err.retry_after().unwrap(), "code {code}: {delays:?}");
    }
    let pair: Vec<u64> =
        (1..=3).map(|n| policy.delay_for(n, &graph_error(131056), 0.0).unwrap().as_secs()).collect();
    assert_eq!(pair, [6, 16, 60], "Meta's 4^x from 6 s, capped at max_delay");
}

/// A `Retry-After` header (seconds) is a lower bound of the wait, for Graph errors and bare statuses; one
/// beyond `max_delay` leaves the call to the caller, like a long class delay.
#[tokio::test]
async fn retry_after_is_respected() {
    let server = MockServer::start().await;
    server
        .reply_with_headers(503, &graph(2), &[("retry-after", "42")])
        .reply_with_headers(429, &json!("slow down"), &[("retry-after", "17")])
        .reply(200, &ok());
    let (jittery, clock) = client(&server, RetryPolicy::default().with_jitter(1.0));
    send(&jittery).await.unwrap();
    assert_eq!(server.requests().len(), 3);
    let sleeps = clock.sleeps();
    assert!(sleeps[0] >= Duration::from_secs(42), "{sleeps:?}");
    assert!(sleeps[1] >= Duration::from_secs(17), "{sleeps:?}");

    let server = MockServer::start().await;
    server.reply_with_headers(503, &graph(2), &[("retry-after", "3600")]).reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default());
    let err = send(&client).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(server.requests().len(), 1);
    assert!(clock.sleeps().is_empty());
}

/// Meta's `is_transient: true` on an error that pauses the number (a dead token, a policy block) does not
/// make the client retry it in place.
#[tokio::test]
async fn is_transient_does_not_retry_errors_that_pause_the_number() {
    for code in [190, 368] {
        let server = MockServer::start().await;
        let body = json!({"error": {"message": format!("(#{code})"), "code": code, "is_transient": true}});
        server.reply(400, &body).reply(200, &ok());
        let (client, clock) = client(&server, RetryPolicy::default());
        let err = send(&client).await.unwrap_err();
        assert!(!err.is_retryable(), "code {code}");
        assert_eq!(err.is_retryable(), err.classification().retryable, "code {code}");
        assert_eq!(server.requests().len(), 1, "code {code} was retried");
        assert!(clock.sleeps().is_empty());
    }
}

/// An error envelope with odd members keeps its code, so a 131056 is still retried.
#[tokio::test]
async fn an_odd_envelope_is_still_retried_by_its_code() {
    let server = MockServer::start().await;
    let odd = json!({"error": {"message": "(#131056) pair rate limit hit", "type": "OAuthException",
        "code": 131056, "error_subcode": "2494010", "error_data": "not an object", "fbtrace_id": "T"}});
    server.reply(400, &odd).reply(200, &ok());
    let (client, clock) = client(&server, RetryPolicy::default());
    send(&client).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert!(clock.sleeps()[0] >= Duration::from_secs(6));
}
