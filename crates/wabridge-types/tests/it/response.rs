//! Responses parse in every shape Meta sends, and Meta's saved responses round-trip.

use wabridge_types::limits::ThroughputLevel;
use wabridge_types::response::{
    BusinessProfile, MediaInfo, Page, PhoneNumber, RegisterRequest, SendResponse, SubscribeRequest, Success,
    ThroughputResponse,
};
use wabridge_types::template::{ParameterFormat, TemplateDefinition, TemplateStatus, placeholders};

use crate::reference;

#[test]
fn send_response_with_and_without_message_status() {
    let plain: SendResponse = serde_json::from_str(
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],
            "messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}"#,
    )
    .unwrap();
    assert_eq!(plain.contacts[0].wa_id.as_ref().map(|w| w.as_str()), Some("16505551234"));
    assert!(plain.message_id().unwrap().as_str().starts_with("wamid."));
    assert_eq!(plain.messages[0].message_status, None);
    let tpl: SendResponse = serde_json::from_str(
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],
            "messages":[{"id":"wamid.X","message_status":"accepted"}]}"#,
    )
    .unwrap();
    assert_eq!(tpl.messages[0].message_status.as_deref(), Some("accepted"));
}

#[test]
fn an_accepted_send_reads_whatever_its_contacts_entry_holds() {
    // A send to a business-scoped user id: the user named by `user_id`, no `wa_id`.
    let scoped: SendResponse = serde_json::from_str(
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"US.1349","user_id":"US.1349"}],
            "messages":[{"id":"wamid.X"}]}"#,
    )
    .unwrap();
    assert_eq!(scoped.message_id().unwrap().as_str(), "wamid.X");
    assert_eq!(
        (scoped.contacts[0].wa_id.as_ref(), scoped.contacts[0].user_id.as_deref()),
        (None, Some("US.1349"))
    );
    for body in [r#"{"contacts":[{}],"messages":[{"id":"wamid.Y"}]}"#, r#"{"messages":[{"id":"wamid.Y"}]}"#] {
        let sent: SendResponse = serde_json::from_str(body).unwrap();
        assert_eq!(sent.message_id().unwrap().as_str(), "wamid.Y", "{body}");
    }
    // The message id is what must be there.
    assert!(serde_json::from_str::<SendResponse>(r#"{"contacts":[{"input":"1"}],"messages":[{}]}"#).is_err());
}

#[test]
fn success_as_bool_or_string() {
    assert!(serde_json::from_str::<Success>(r#"{"success":true}"#).unwrap().success);
    assert!(serde_json::from_str::<Success>(r#"{"success":"true"}"#).unwrap().success);
    assert!(!serde_json::from_str::<Success>(r#"{"success":false}"#).unwrap().success);
    assert!(serde_json::from_str::<Success>(r#"{"success":3}"#).is_err());
}

#[test]
fn media_info_file_size_string_or_number_round_trips() {
    for body in [
        r#"{"messaging_product":"whatsapp","url":"https://x/y","mime_type":"image/jpeg","sha256":"ab","file_size":"303833","id":"1"}"#,
        r#"{"messaging_product":"whatsapp","url":"https://x/y","mime_type":"image/jpeg","sha256":"ab","file_size":303833,"id":"1"}"#,
    ] {
        let info: MediaInfo = serde_json::from_str(body).unwrap();
        assert_eq!(info.file_size.bytes, 303_833);
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(body).unwrap());
    }
}

#[test]
fn template_page_with_cursors() {
    let page: Page<TemplateDefinition> = serde_json::from_str(
        r#"{"data":[{"name":"order_update","components":[
              {"type":"HEADER","format":"TEXT","text":"Order {{1}}","example":{"header_text":["42"]}},
              {"type":"BODY","text":"Hi {{1}}, your order {{2}} ships {{1}}","example":{"body_text":[["Mark","42"]]}},
              {"type":"FOOTER","text":"Thanks"},
              {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop"},{"type":"URL","text":"Track","url":"https://t.example/{{1}}"}]}],
            "language":"en_US","status":"APPROVED","category":"UTILITY","id":"920070352646140"}],
           "paging":{"cursors":{"before":"MAZDZD","after":"MjQZD"},"next":"https://graph.example/next"}}"#,
    )
    .unwrap();
    assert_eq!(page.next_cursor(), Some("MjQZD"));
    let t = &page.data[0];
    assert!(t.is_approved());
    let shape = t.shape();
    assert_eq!(shape.header_format.as_deref(), Some("TEXT"));
    assert_eq!(shape.header_params, ["1"]);
    assert_eq!(shape.body_params, ["1", "2"]);
    assert_eq!(shape.buttons, ["QUICK_REPLY", "URL"]);
    assert_eq!(shape.dynamic_url_buttons, [1]);
    // Without `next`, there is no further page even if an `after` cursor is present.
    let last: Page<TemplateDefinition> =
        serde_json::from_str(r#"{"data":[],"paging":{"cursors":{"before":"A","after":"B"}}}"#).unwrap();
    assert_eq!(last.next_cursor(), None);
    assert_eq!(placeholders("Hello {{first_name}}, {{ order }}!"), ["first_name", "order"]);
    let s: TemplateStatus = serde_json::from_str("\"SOMETHING_NEW\"").unwrap();
    assert_eq!(s.as_str(), "SOMETHING_NEW");
}

#[test]
fn phone_numbers_and_throughput() {
    let page: Page<PhoneNumber> = serde_json::from_str(
        r#"{"data":[{"verified_name":"Jasper's Market","display_phone_number":"+1 631-555-5555","id":"1906385232743451",
            "quality_rating":"GREEN","code_verification_status":"VERIFIED","platform_type":"CLOUD_API",
            "throughput":{"level":"STANDARD"}}],"paging":{"cursors":{"before":"a","after":"b"}}}"#,
    )
    .unwrap();
    assert_eq!(page.data[0].throughput.as_ref().unwrap().level, ThroughputLevel::Standard);
    assert_eq!(page.data[0].quality_rating.as_deref(), Some("GREEN"));
    let t: ThroughputResponse =
        serde_json::from_str(r#"{"throughput":{"level":"HIGH"},"id":"106540352242922"}"#).unwrap();
    assert_eq!(t.throughput.level, ThroughputLevel::High);
}

#[test]
fn business_profile_limits() {
    let page: Page<BusinessProfile> = serde_json::from_str(
        r#"{"data":[{"about":"Open 9-5","address":"1 Main St","description":"Shop","email":"a@b.example",
            "messaging_product":"whatsapp","profile_picture_url":"https://p","websites":["https://a.example"],
            "vertical":"RETAIL"}]}"#,
    )
    .unwrap();
    page.data[0].validate().unwrap();
    let long = BusinessProfile { about: Some("a".repeat(140)), ..Default::default() };
    let err = long.validate().unwrap_err();
    assert_eq!(err.field(), "about");
    assert!(err.to_string().contains("140") && err.to_string().contains("139"));
    let sites =
        BusinessProfile { websites: Some(vec!["a".into(), "b".into(), "c".into()]), ..Default::default() };
    assert_eq!(sites.validate().unwrap_err().field(), "websites");
}

/// Meta's saved responses in `requests_and_responses.json` parse into our types where we model them.
#[test]
fn reference_saved_responses_parse() {
    let items = reference::json("meta-examples/requests_and_responses.json");
    let mut parsed = 0;
    for item in items.as_array().unwrap() {
        let url = item["url"].as_str().unwrap_or("");
        let method = item["method"].as_str().unwrap_or("");
        for resp in item["responses"].as_array().into_iter().flatten() {
            // Saved bodies are JSON values, or strings where the sample was not valid JSON.
            let json = match &resp["body"] {
                serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(s) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                serde_json::Value::Null => continue,
                v => v.clone(),
            };
            if json.get("error").is_some() {
                serde_json::from_value::<wabridge_types::error::GraphErrorEnvelope>(json.clone())
                    .unwrap_or_else(|e| panic!("error response of {url}: {e}"));
                parsed += 1;
            } else if method == "POST" && url.ends_with("/messages") && json.get("messages").is_some() {
                let r: SendResponse = serde_json::from_value(json.clone()).unwrap();
                assert_eq!(serde_json::to_value(&r).unwrap(), json, "{url}");
                parsed += 1;
            } else if json.get("success").is_some() && json.as_object().unwrap().len() == 1 {
                serde_json::from_value::<Success>(json).unwrap();
                parsed += 1;
            } else if url.contains("message_templates") && method == "GET" && json.get("data").is_some() {
                serde_json::from_value::<Page<TemplateDefinition>>(json).unwrap();
                parsed += 1;
            } else if url.ends_with("/phone_numbers") && method == "GET" && json.get("data").is_some() {
                serde_json::from_value::<Page<PhoneNumber>>(json).unwrap();
                parsed += 1;
            }
        }
    }
    println!("parsed {parsed} saved responses");
    assert!(parsed >= 5, "only {parsed} saved responses were recognised");
}

/// An unknown `parameter_format` is kept, so it does not fail the whole page of templates it comes in.
#[test]
fn an_unknown_parameter_format_is_kept() {
    let page: Page<TemplateDefinition> = serde_json::from_str(
        r#"{"data":[{"name":"a","language":"en_US","parameter_format":"NAMED","components":[]},
                    {"name":"b","language":"en_US","parameter_format":"SOMETHING_NEW","components":[]}]}"#,
    )
    .unwrap();
    assert_eq!(page.data[0].parameter_format, Some(ParameterFormat::Named));
    let other = page.data[1].parameter_format.as_ref().unwrap();
    assert_eq!(other, &ParameterFormat::Other("SOMETHING_NEW".to_owned()));
    assert_eq!(other.as_str(), "SOMETHING_NEW");
    assert_eq!(serde_json::to_value(&page.data[1]).unwrap()["parameter_format"], "SOMETHING_NEW");
    assert_eq!(serde_json::to_value(ParameterFormat::Positional).unwrap(), "POSITIONAL");
}

/// The two-step PIN (and a migration backup's password) and a subscription's verify token never appear in
/// `Debug` output.
#[test]
fn secrets_of_requests_are_redacted_in_debug() {
    let mut register = RegisterRequest::new("274913");
    register.backup = Some(serde_json::json!({"data": "blob", "password": "backup-pass"}));
    let shown = format!("{register:?} {register:#?}");
    assert!(!shown.contains("274913") && !shown.contains("backup-pass"), "{shown}");
    assert!(shown.contains("[redacted]"));

    let subscribe = SubscribeRequest {
        override_callback_uri: Some("https://hooks.example/wa".to_owned()),
        verify_token: Some("verify-me-3141".to_owned()),
    };
    let shown = format!("{subscribe:?} {subscribe:#?}");
    assert!(!shown.contains("verify-me-3141"), "{shown}");
    assert!(shown.contains("https://hooks.example/wa"), "{shown}");
}
