//! Error shapes, their classification, and what must never leak (the token).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wabridge_cloud::{AccessToken, Client, CloudError};
use wabridge_types::PhoneNumberId;
use wabridge_types::error::{ErrorClass, PauseScope};
use wabridge_types::send::OutboundMessage;

use crate::harness::{APP_SECRET, MockServer, PHONE_ID, TOKEN, reference_json};

fn text() -> OutboundMessage {
    OutboundMessage::text("16505551234", "hello")
}

/// What the client must decide about one code, written out by hand.
struct Stated {
    code: i64,
    class: ErrorClass,
    retryable: bool,
    /// The least delay, in seconds.
    delay: Option<u64>,
    pause: Option<PauseScope>,
}

const fn stated(
    code: i64,
    class: ErrorClass,
    retryable: bool,
    delay: Option<u64>,
    pause: Option<PauseScope>,
) -> Stated {
    Stated { code, class, retryable, delay, pause }
}

/// What the client must decide for a few representative codes, written out by hand (not read back from
/// `Classification`): class, retryable, the least delay in seconds, and what is paused.
const STATED: &[Stated] = &[
    stated(0, ErrorClass::Auth, false, None, Some(PauseScope::Number)),
    stated(2, ErrorClass::TransientServer, true, Some(5), None),
    stated(4, ErrorClass::CallQuota, true, Some(60), None),
    stated(100, ErrorClass::InvalidRequest, false, None, None),
    stated(190, ErrorClass::Auth, false, None, Some(PauseScope::Number)),
    stated(250, ErrorClass::Permission, false, None, Some(PauseScope::Number)),
    stated(368, ErrorClass::Account, false, None, Some(PauseScope::Number)),
    stated(80007, ErrorClass::CallQuota, true, Some(300), Some(PauseScope::Waba)),
    stated(130429, ErrorClass::Throughput, true, Some(1), None),
    stated(131000, ErrorClass::TransientServer, true, Some(5), None),
    stated(131026, ErrorClass::Recipient, false, None, None),
    stated(131042, ErrorClass::Payment, false, None, Some(PauseScope::Number)),
    stated(131047, ErrorClass::WindowClosed, false, None, None),
    stated(131048, ErrorClass::QualityLimit, false, Some(3600), Some(PauseScope::Number)),
    stated(131056, ErrorClass::PairLimit, true, Some(6), Some(PauseScope::Recipient)),
    stated(131057, ErrorClass::Maintenance, true, Some(60), Some(PauseScope::Number)),
    stated(132001, ErrorClass::Template, false, None, None),
];

/// Every code of Meta's table, answered with its documented HTTP status, comes back as a typed Graph error
/// with its code, status, details and trace id; the codes of [`STATED`] with the decision stated there.
#[tokio::test]
async fn every_documented_error_parses_with_its_class() {
    let table = reference_json("error-codes.json");
    let codes = table["codes"].as_array().unwrap();
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    let mut checked = 0;
    for entry in codes {
        let code = match &entry["code"] {
            Value::Number(n) => n.as_i64().unwrap(),
            Value::String(s) if s == "200-299" => 250,
            other => panic!("unexpected code {other}"),
        };
        let status = match &entry["http_status"] {
            Value::Number(n) => u16::try_from(n.as_u64().unwrap()).unwrap(),
            _ => 400,
        };
        let title = entry["title"].as_str().unwrap();
        let body = json!({"error": {"message": format!("(#{code}) {title}"), "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": entry["meaning"]}, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}});
        server.reply(status, &body);
        let err = client.send_message(&number, &text()).await.unwrap_err();
        let CloudError::Graph { status: got_status, error, .. } = &err else { panic!("{code}: {err:?}") };
        assert_eq!(*got_status, status);
        assert_eq!(error.code, code);
        assert_eq!(error.details(), entry["meaning"].as_str());
        assert_eq!(error.fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
        assert_eq!(err.code(), Some(code));
        assert_eq!(err.status(), Some(status));
        assert_ne!(err.class(), ErrorClass::Unknown, "code {code} of Meta's table is classified");
        if let Some(s) = STATED.iter().find(|s| s.code == code) {
            let c = err.classification();
            assert_eq!(c.class, s.class, "code {code}");
            assert_eq!(c.retryable, s.retryable, "code {code}");
            assert_eq!(err.is_retryable(), s.retryable, "code {code}");
            assert_eq!(c.pause, s.pause, "code {code}");
            assert_eq!(err.retry_after(), s.delay.map(Duration::from_secs), "code {code}");
            checked += 1;
        }
    }
    assert_eq!(checked, STATED.len(), "every stated code is in Meta's table");
}

#[tokio::test]
async fn the_reference_envelope_parses() {
    let envelope = reference_json("error-codes.json")["error_envelope"].clone();
    let server = MockServer::start().await;
    server.reply(400, &envelope);
    let client = server.client().build().unwrap();
    let err = client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::PairLimit);
    assert!(err.is_retryable());
    assert!(err.retry_after().unwrap().as_secs() >= 6);
    assert_eq!(err.graph_error().unwrap().error_subcode, None);
}

#[tokio::test]
async fn shapes_beyond_the_table() {
    let server = MockServer::start().await;
    // Minimal envelope, subcode, user title, is_transient, unknown fields.
    server.reply(
        401,
        &json!({"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190,
                          "error_subcode": 463, "error_user_title": "Expired", "error_user_msg": "Log in again"}}),
    );
    server.reply(400, &json!({"error": {"code": 131000, "is_transient": true, "extra_field": [1, 2]}}));
    server.reply(500, &json!({"error": {"message": "unknown", "code": 987654}}));
    server.reply(429, &json!({"error": {"message": "slow down", "code": 987654}}));
    server.reply_raw(502, b"<html>Bad Gateway</html>".to_vec(), "text/html");
    server.reply_raw(200, b"not json".to_vec(), "text/plain");
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    let next = async || client.send_message(&number, &text()).await.unwrap_err();

    let e = next().await;
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(e.is_auth());
    assert_eq!(e.graph_error().unwrap().error_subcode, Some(463));
    assert!(!e.is_retryable());

    let e = next().await;
    assert!(e.is_retryable());
    assert!(e.graph_error().unwrap().extra.contains_key("extra_field"));

    let e = next().await;
    assert_eq!(e.class(), ErrorClass::TransientServer, "unknown code with 5xx");
    assert!(e.is_retryable());

    let e = next().await;
    assert_eq!(e.class(), ErrorClass::Throughput, "unknown code with 429");

    let e = next().await;
    assert!(
        matches!(&e, CloudError::Status { status: 502, snippet, .. } if snippet.contains("Bad Gateway")),
        "{e:?}"
    );
    assert!(e.is_retryable());

    let e = next().await;
    assert!(matches!(e, CloudError::Decode { status: 200, .. }), "{e:?}");
    assert!(!e.is_retryable());
    // The source chain is kept.
    assert!(std::error::Error::source(&e).is_some());
}

/// Meta refusing the `appsecret_proof` (missing, or not matching) is the app's configuration, not the
/// message: the number pauses for an operator instead of failing the message, as for a refused token. Any
/// other 100 is still the request's fault.
#[tokio::test]
async fn a_refused_appsecret_proof_pauses_the_number() {
    let server = MockServer::start().await;
    server.reply(
        400,
        &json!({"error": {"message": "API calls from the server require an appsecret_proof argument",
                          "type": "GraphMethodException", "code": 100, "fbtrace_id": "T"}}),
    );
    server.reply(
        400,
        &json!({"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100,
                          "error_data": {"details": "Invalid appsecret_proof provided in the API argument"}}}),
    );
    server.reply(400, &json!({"error": {"message": "(#100) Invalid parameter", "code": 100}}));
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    for _ in 0..2 {
        let e = client.send_message(&number, &text()).await.unwrap_err();
        let c = e.classification();
        assert_eq!(
            (c.class, c.pause, c.needs_operator, c.retryable),
            (ErrorClass::Auth, Some(PauseScope::Number), true, false),
            "{e}"
        );
        assert!(wabridge_cloud::is_appsecret_proof_refusal(e.graph_error().unwrap()));
        // Not the access token: no token refresh is asked for it.
        assert!(!e.is_auth());
    }
    let e = client.send_message(&number, &text()).await.unwrap_err();
    assert_eq!((e.class(), e.classification().pause), (ErrorClass::InvalidRequest, None), "{e}");
}

#[tokio::test]
async fn a_number_out_of_the_tokens_reach_pauses_the_number() {
    let server = MockServer::start().await;
    let missing = |method: &str| {
        json!({"error": {"message": format!("Unsupported {method} request. Object with ID '{PHONE_ID}' does not \
            exist, cannot be loaded due to missing permissions, or does not support this operation. Please read \
            the Graph API documentation at https://developers.facebook.com/docs/graph-api"),
            "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "Ab1"}})
    };
    server.reply(400, &missing("post"));
    server.reply(400, &missing("get"));
    let client = server.client().build().unwrap();
    let e = client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap_err();
    let c = e.classification();
    assert_eq!(
        (c.class, c.pause, c.needs_operator, c.retryable),
        (ErrorClass::Permission, Some(PauseScope::Number), true, false),
        "{e}"
    );
    assert!(!c.fails_message(), "no message is at fault: {e}");
    // The same code for a GET of an object that does not exist (a media id): that object is at fault.
    let e = client.media_info(&wabridge_types::MediaId::new("4490709327384033")).await.unwrap_err();
    assert_eq!((e.class(), e.classification().pause), (ErrorClass::InvalidRequest, None), "{e}");
}

#[tokio::test]
async fn graphs_other_rate_limits_are_waited_out() {
    let server = MockServer::start().await;
    for (code, message) in [
        (613, "(#613) Calls to this api have exceeded the rate limit."),
        (17, "(#17) User request limit reached"),
        (32, "(#32) Page request limit reached"),
        (80008, "(#80008) There have been too many calls to this WhatsApp Business account."),
        // A code of no table, known only by its words.
        (80099, "(#80099) Too many calls were made to this endpoint."),
    ] {
        server.reply(400, &json!({"error": {"message": message, "type": "OAuthException", "code": code}}));
    }
    let client = server.client().build().unwrap();
    for code in [613, 17, 32, 80008, 80099] {
        let e = client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap_err();
        assert_eq!(e.code(), Some(code));
        let c = e.classification();
        assert_eq!((c.class, c.retryable), (ErrorClass::CallQuota, true), "{e}");
        assert!(c.delay >= Some(Duration::from_secs(60)), "{e}: {c:?}");
        assert!(!c.fails_message(), "{e}");
    }
}

#[tokio::test]
async fn transport_errors_are_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client =
        Client::builder().base_url(format!("http://{addr}")).access_token(TOKEN).no_proxy().build().unwrap();
    let err = client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap_err();
    assert!(matches!(err, CloudError::Http(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.class(), ErrorClass::TransientServer);
}

#[tokio::test]
async fn the_token_never_appears_in_debug_output() {
    let server = MockServer::start().await;
    server.reply(401, &json!({"error": {"message": "Invalid OAuth access token.", "code": 190}}));
    let builder = server.client();
    assert!(!format!("{builder:?}").contains(TOKEN));
    let client = builder.build().unwrap();
    let debug = format!("{client:?} {client:#?}");
    assert!(!debug.contains(TOKEN) && !debug.contains(APP_SECRET), "{debug}");
    assert!(debug.contains("[redacted]"));
    let token = AccessToken::new(TOKEN);
    assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
    assert_eq!(format!("{token}"), "[redacted]");

    let err = client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap_err();
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_appears_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    server
        .reply(400, &json!({"error": {"code": 131056}}))
        .reply(200, &json!({"messages": [{"id": "wamid.A"}]}));
    let clock = wabridge_cloud::time::ManualClock::new();
    let client =
        server.client().retry(wabridge_cloud::RetryPolicy::default()).sleeper(clock).build().unwrap();
    client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap();
    client.download_media(&format!("{}/media?mid=1", server.url())).await.unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the client logs its calls: {logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("appsecret_proof"), "{logs}");
}

#[tokio::test]
async fn no_proof_without_an_app_secret_and_a_custom_user_agent() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"messages": [{"id": "wamid.A"}]}));
    let client = Client::builder()
        .base_url(server.url())
        .access_token(TOKEN)
        .user_agent("my-app/1.2")
        .api_version("v21.0")
        .no_proxy()
        .build()
        .unwrap();
    assert_eq!(client.api_version(), "v21.0");
    client.send_message(&PhoneNumberId::new(PHONE_ID), &text()).await.unwrap();
    let req = server.only_request();
    assert_eq!(req.path, format!("/v21.0/{PHONE_ID}/messages"));
    assert!(req.query.is_empty());
    assert_eq!(req.header("user-agent"), Some("my-app/1.2"));
}

#[test]
fn the_builder_needs_a_token_and_a_valid_base_url() {
    assert!(matches!(Client::builder().build(), Err(CloudError::Token(_))));
    let err = Client::builder().access_token("t").base_url("ftp://x").build().unwrap_err();
    assert!(matches!(err, CloudError::Url(_)));
    let client = Client::builder().access_token("t").build().unwrap();
    assert_eq!(client.base_url().as_str(), "https://graph.facebook.com/");
    assert_eq!(client.api_version(), "v23.0");
}

#[test]
fn answers_that_may_hide_an_accepted_send_have_an_unknown_outcome() {
    let garbled = serde_json::from_str::<serde_json::Value>("{not json").unwrap_err();
    assert!(CloudError::Decode { status: 200, source: garbled }.outcome_unknown());
    assert!(CloudError::Unsuccessful.outcome_unknown());
    let status = |status| CloudError::Status { status, snippet: String::new(), retry_after_header: None };
    assert!(status(502).outcome_unknown());
    assert!(status(504).outcome_unknown());
    // Refused before processing: retried or failed as usual.
    assert!(!status(503).outcome_unknown());
    assert!(!status(400).outcome_unknown());
}
