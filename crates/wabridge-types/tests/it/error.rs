//! Graph errors: the envelope parses, and every code of `error-codes.json` has the class stated here.

use std::time::Duration;

use wabridge_types::error::{
    Classification, ErrorClass, GraphError, GraphErrorEnvelope, PauseScope, code_info, http_status_for,
};

use crate::reference;

/// The expected class of every code, written out by hand (not read back from the crate's own table).
const EXPECTED: &[(i64, ErrorClass)] = &[
    (0, ErrorClass::Auth),
    (1, ErrorClass::TransientServer),
    (2, ErrorClass::TransientServer),
    (3, ErrorClass::Permission),
    (4, ErrorClass::CallQuota),
    (10, ErrorClass::Permission),
    (33, ErrorClass::Registration),
    (100, ErrorClass::InvalidRequest),
    (190, ErrorClass::Auth),
    (200, ErrorClass::Permission),
    (250, ErrorClass::Permission),
    (299, ErrorClass::Permission),
    (368, ErrorClass::Account),
    (80007, ErrorClass::CallQuota),
    (130429, ErrorClass::Throughput),
    (130472, ErrorClass::Recipient),
    (130497, ErrorClass::Recipient),
    (131000, ErrorClass::TransientServer),
    (131005, ErrorClass::Permission),
    (131008, ErrorClass::InvalidRequest),
    (131009, ErrorClass::InvalidRequest),
    (131016, ErrorClass::TransientServer),
    (131021, ErrorClass::InvalidRequest),
    (131026, ErrorClass::Recipient),
    (131030, ErrorClass::Recipient),
    (131031, ErrorClass::Account),
    (131037, ErrorClass::Account),
    (131042, ErrorClass::Payment),
    (131044, ErrorClass::Payment),
    (131045, ErrorClass::Registration),
    (131047, ErrorClass::WindowClosed),
    (131048, ErrorClass::QualityLimit),
    (131049, ErrorClass::Recipient),
    (131050, ErrorClass::Recipient),
    (131051, ErrorClass::InvalidRequest),
    (131052, ErrorClass::Media),
    (131053, ErrorClass::Media),
    (131056, ErrorClass::PairLimit),
    (131057, ErrorClass::Maintenance),
    (131062, ErrorClass::InvalidRequest),
    (131063, ErrorClass::Template),
    (131064, ErrorClass::QualityLimit),
    (132000, ErrorClass::Template),
    (132001, ErrorClass::Template),
    (132005, ErrorClass::Template),
    (132007, ErrorClass::Template),
    (132008, ErrorClass::Template),
    (132012, ErrorClass::Template),
    (132015, ErrorClass::Template),
    (132016, ErrorClass::Template),
    (132068, ErrorClass::Flow),
    (132069, ErrorClass::Flow),
    (133000, ErrorClass::Registration),
    (133004, ErrorClass::Registration),
    (133005, ErrorClass::Registration),
    (133006, ErrorClass::Registration),
    (133008, ErrorClass::Registration),
    (133009, ErrorClass::Registration),
    (133010, ErrorClass::Registration),
    (133015, ErrorClass::Registration),
    (133016, ErrorClass::Registration),
    (135000, ErrorClass::InvalidRequest),
    (137000, ErrorClass::Recipient),
];

#[test]
fn every_code_has_its_stated_class() {
    for &(code, class) in EXPECTED {
        assert_eq!(Classification::of(code).class, class, "code {code}");
    }
    assert_eq!(Classification::of(999_999).class, ErrorClass::Unknown);
}

#[test]
fn every_reference_code_is_classified_and_has_metas_http_status() {
    let table = reference::json("error-codes.json");
    let codes = table["codes"].as_array().unwrap();
    assert!(codes.len() >= 60, "the reference lists {} codes", codes.len());
    for entry in codes {
        let code = match &entry["code"] {
            serde_json::Value::Number(n) => n.as_i64().unwrap(),
            // "200-299": a range of permission codes.
            serde_json::Value::String(s) if s == "200-299" => 200,
            other => panic!("unexpected code {other}"),
        };
        assert!(
            EXPECTED.iter().any(|(c, _)| *c == code),
            "code {code} of error-codes.json has no expectation in this test"
        );
        assert_ne!(Classification::of(code).class, ErrorClass::Unknown, "code {code}");
        let info = code_info(code).unwrap_or_else(|| panic!("code {code} missing from CODES"));
        assert_eq!(info.title, entry["title"].as_str().unwrap(), "title of {code}");
        match entry["http_status"].as_u64() {
            Some(status) => assert_eq!(u64::from(http_status_for(code)), status, "HTTP status of {code}"),
            None => assert_eq!(http_status_for(code), 400, "codes without a status answer 400 [R]"),
        }
    }
}

#[test]
fn retry_pause_and_fail_decisions() {
    // Throughput: retry soon, nothing paused, message not failed.
    let c = Classification::of(130429);
    assert!(c.retryable && c.pause.is_none() && !c.fails_message());
    // Pair limit: freeze the recipient for at least 6 s.
    let c = Classification::of(131056);
    assert!(c.retryable);
    assert!(c.delay.unwrap() >= Duration::from_secs(6));
    assert_eq!(c.pause, Some(PauseScope::Recipient));
    // Throughput upgrade: pause the number, then retry.
    let c = Classification::of(131057);
    assert!(c.retryable);
    assert_eq!(c.pause, Some(PauseScope::Number));
    // WABA quota: pause the WABA.
    assert_eq!(Classification::of(80007).pause, Some(PauseScope::Waba));
    // Auth, account and payment errors pause the number and need an operator; they never fail messages.
    for code in [0, 190, 368, 131031, 131042] {
        let c = Classification::of(code);
        assert_eq!(c.pause, Some(PauseScope::Number), "code {code}");
        assert!(c.needs_operator && !c.retryable && !c.fails_message(), "code {code}");
    }
    // Errors about the message itself fail it and are not retried.
    for code in [100, 131008, 131009, 131026, 131047, 131051, 132000, 132001, 132012] {
        let c = Classification::of(code);
        assert!(c.fails_message(), "code {code}");
    }
    // Transient server errors are retried with backoff.
    for code in [2, 131000, 131016, 133004] {
        assert!(Classification::of(code).retryable, "code {code}");
    }
    // Unknown codes: the HTTP status decides.
    assert_eq!(Classification::with_http_status(424242, 503).class, ErrorClass::TransientServer);
    assert_eq!(Classification::with_http_status(424242, 429).class, ErrorClass::Throughput);
    assert_eq!(Classification::with_http_status(424242, 400).class, ErrorClass::Unknown);
}

#[test]
fn reference_envelope_parses_and_round_trips() {
    let table = reference::json("error-codes.json");
    let env: GraphErrorEnvelope = serde_json::from_value(table["error_envelope"].clone()).unwrap();
    assert_eq!(env.error.code, 131056);
    assert_eq!(env.error.class(), ErrorClass::PairLimit);
    assert!(env.error.is_retryable());
    assert!(env.error.retry_after().unwrap() >= Duration::from_secs(6));
    assert_eq!(env.error.fbtrace_id.as_deref(), Some("A4O5a8RAgePwbcGSu"));
    assert!(env.error.details().unwrap().starts_with("Message failed to send"));
    // error_subcode is null in the reference: a null and an absent subcode mean the same.
    let back = serde_json::to_value(&env).unwrap();
    assert_eq!(back["error"]["code"], 131056);
    assert_eq!(back["error"]["error_data"], table["error_envelope"]["error"]["error_data"]);
}

#[test]
fn own_error_shapes_parse_keeping_unknown_fields() {
    let body = r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException",
        "code":190,"error_subcode":463,"is_transient":false,"error_user_title":"Expired","error_user_msg":"Log in again",
        "fbtrace_id":"Azz1","x_new_field":{"a":1}}}"#;
    let env: GraphErrorEnvelope = serde_json::from_str(body).unwrap();
    assert_eq!(env.error.code, 190);
    assert_eq!(env.error.error_subcode, Some(463));
    assert_eq!(env.error.class(), ErrorClass::Auth);
    assert_eq!(env.error.pauses_sender(), Some(PauseScope::Number));
    let expected: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(serde_json::to_value(&env).unwrap(), expected);

    // A minimal error (no type, no error_data) still parses.
    let min: GraphErrorEnvelope = serde_json::from_str(r#"{"error":{"message":"boom","code":2}}"#).unwrap();
    assert!(min.error.is_retryable());
    // is_transient from Meta overrides the table.
    let t: GraphErrorEnvelope =
        serde_json::from_str(r#"{"error":{"message":"x","code":100,"is_transient":true}}"#).unwrap();
    assert!(t.error.is_retryable());
}

#[test]
fn built_errors_look_like_metas() {
    let e = GraphError::new(131056, "too many messages to one user").with_trace_id("T1");
    assert_eq!(e.message, "(#131056) (Business Account, Consumer Account) pair rate limit hit");
    assert_eq!(e.http_status(), 400);
    assert_eq!(GraphError::new(132001, "x").http_status(), 404);
    assert_eq!(GraphError::new(190, "x").http_status(), 401);
    assert_eq!(GraphError::new(2, "x").http_status(), 503);
    let v = serde_json::to_value(e.clone().into_envelope()).unwrap();
    assert_eq!(v["error"]["type"], "OAuthException");
    assert_eq!(v["error"]["error_data"]["details"], "too many messages to one user");
    assert_eq!(v["error"]["error_data"]["messaging_product"], "whatsapp");
    assert_eq!(e.to_string(), format!("{}: too many messages to one user", e.message));
}

/// Meta's `is_transient: true` wins over the table for the decision too, not only for `is_retryable`: an
/// error that would fail the message is tried again; one that pauses keeps its pause.
#[test]
fn is_transient_makes_a_failing_error_retryable() {
    let transient: GraphError = serde_json::from_value(serde_json::json!(
        {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100, "is_transient": true}
    ))
    .unwrap();
    let c = transient.classification();
    assert!(c.retryable && !c.fails_message());
    assert_eq!(c.retryable, transient.is_retryable());
    assert!(c.delay.is_some());
    let plain = GraphError::new(100, "x");
    assert!(plain.classification().fails_message());
    let mut paused = GraphError::new(131056, "pair");
    paused.is_transient = Some(true);
    assert_eq!(paused.classification(), GraphError::new(131056, "pair").classification());
}

/// `is_transient: true` does not make an error that pauses the number retryable: `is_retryable` says what
/// the classification says (190 is a dead token, 368 a policy block: retrying in place repeats the refusal).
#[test]
fn is_transient_does_not_make_a_pausing_error_retryable() {
    for code in [190, 368, 131031, 131042] {
        let mut error = GraphError::new(code, "x");
        error.is_transient = Some(true);
        assert!(!error.is_retryable(), "code {code}");
        assert_eq!(error.is_retryable(), error.classification().retryable, "code {code}");
        assert_eq!(error.pauses_sender(), Some(PauseScope::Number), "code {code}");
    }
}

/// A member of an unexpected type does not lose the error: the code, subcode, message, type and trace id
/// are kept, and the odd member is kept in `extra` (so it serializes back).
#[test]
fn odd_envelopes_keep_what_matters() {
    let parse = |v: serde_json::Value| serde_json::from_value::<GraphErrorEnvelope>(v).map(|e| e.error);

    // error_data as a string (older Graph errors), error_subcode as a numeric string.
    let body = serde_json::json!({"error": {"message": "(#131056) pair rate limit hit",
        "type": "OAuthException", "code": 131056, "error_subcode": "2494010", "error_data": "{\"blame_field_specs\":[[\"\"]]}",
        "fbtrace_id": "Atrace"}});
    let e = parse(body.clone()).unwrap();
    assert_eq!(e.code, 131056);
    assert_eq!(e.error_subcode, Some(2_494_010));
    assert_eq!(e.kind.as_deref(), Some("OAuthException"));
    assert_eq!(e.fbtrace_id.as_deref(), Some("Atrace"));
    assert!(e.error_data.is_none());
    assert_eq!(e.extra["error_data"], body["error"]["error_data"]);
    assert!(e.is_retryable());
    assert_eq!(e.class(), ErrorClass::PairLimit);
    let back = serde_json::to_value(&e).unwrap();
    assert_eq!(back["error_data"], body["error"]["error_data"], "the odd member serializes back");

    // The code as a string, a subcode that is no number, is_transient as a string, error_data members of
    // other types, a message that is not a string.
    let e = parse(serde_json::json!({"error": {"message": 42, "type": "OAuthException", "code": "130429",
        "error_subcode": {"x": 1}, "is_transient": "true", "fbtrace_id": "T2",
        "error_data": {"messaging_product": "whatsapp", "details": {"text": "slow down"}}}}))
    .unwrap();
    assert_eq!(e.code, 130429);
    assert_eq!(e.error_subcode, None);
    assert_eq!(e.extra["error_subcode"], serde_json::json!({"x": 1}));
    assert_eq!(e.is_transient, Some(true));
    assert_eq!(e.message, "");
    assert_eq!(e.extra["message"], 42);
    let data = e.error_data.as_ref().unwrap();
    assert_eq!(data.messaging_product.as_deref(), Some("whatsapp"));
    assert_eq!(data.details, None);
    assert_eq!(data.extra["details"]["text"], "slow down");
    assert_eq!(e.fbtrace_id.as_deref(), Some("T2"));
    assert_eq!(e.class(), ErrorClass::Throughput);

    // No usable code member: the one in the message is used.
    let e = parse(serde_json::json!({"error": {"message": "(#131057) Account in maintenance mode",
        "code": null}}))
    .unwrap();
    assert_eq!(e.code, 131057);

    // Without any code it is not a Graph error.
    assert!(parse(serde_json::json!({"error": {"message": "boom"}})).is_err());
}
