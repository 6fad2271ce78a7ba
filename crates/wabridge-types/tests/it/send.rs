//! Send requests: Meta's own examples and our fixtures round-trip exactly, constructors write the
//! documented JSON, and every documented limit passes at the limit and fails one past it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wabridge_types::ValidationError;
use wabridge_types::send::{
    ButtonIndex, ButtonSubType, Contact, ContactName, Content, FlowParameters, Header, HeaderContent,
    Interactive, InteractiveAction, ListRow, ListSection, Location, MarkRead, Media, MediaSource,
    MessagesRequest, OutboundMessage, Parameter, ParameterValue, ProductSection, ReplyButton, Template,
};

fn reference_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/meta-examples/requests_and_responses.json")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/send")
}

/// Parses `body`, serializes it again and checks that the JSON is unchanged.
fn round_trip(body: &Value, what: &str) -> MessagesRequest {
    let parsed: MessagesRequest =
        serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{what}: does not parse: {e}"));
    let again = serde_json::to_value(&parsed).unwrap();
    assert_eq!(&again, body, "{what}: round trip changed the JSON");
    parsed
}

/// A short description of where a request landed: `text`, `interactive:list`, `unknown:poll`, ….
fn landing(request: &MessagesRequest) -> String {
    let message = match request {
        MessagesRequest::MarkRead(_) => return "mark_read".to_owned(),
        MessagesRequest::Send(m) => m,
    };
    match &message.content {
        Content::Interactive(i) => match &i.action {
            InteractiveAction::Unknown { kind } => format!("interactive:unknown:{kind}"),
            action => format!("interactive:{}", action.kind()),
        },
        Content::Unknown { kind, .. } => format!("unknown:{kind}"),
        _ => message.kind().to_owned(),
    }
}

#[test]
fn meta_examples_parse_into_typed_variants_and_round_trip() {
    let path = reference_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut parsed, mut placeholders) = (0, 0);
    for entry in &entries {
        let url = entry["url"].as_str().unwrap_or_default().trim();
        if !url.ends_with("/messages") {
            continue;
        }
        // `body` is the request body: a JSON string in some exports, already an object in others, and
        // `{"__unparsed_raw__": …}` for documentation placeholders that are not JSON.
        let body = match &entry["body"] {
            Value::String(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(v) => v,
                Err(_) => {
                    placeholders += 1;
                    continue;
                }
            },
            Value::Object(o) if o.contains_key("__unparsed_raw__") => {
                placeholders += 1;
                continue;
            }
            Value::Null => continue,
            other => other.clone(),
        };
        // A body without `type` is a text message when it has `text` (§1).
        if ["type", "status", "text"].iter().all(|k| body.get(k).is_none()) {
            continue;
        }
        let name = format!("{} / {}", entry["section"], entry["name"]);
        let request = round_trip(&body, &name);
        let landed = landing(&request);
        let kind = body["type"].as_str().unwrap_or("text");
        match kind {
            _ if body.get("status").is_some() => assert_eq!(landed, "mark_read", "{name}"),
            "interactive" => {
                let sub = body["interactive"]["type"].as_str().unwrap();
                if ["order_details", "order_status"].contains(&sub) {
                    assert_eq!(landed, format!("interactive:unknown:{sub}"), "{name}");
                } else {
                    assert_eq!(landed, format!("interactive:{sub}"), "{name}");
                }
            }
            _ => assert_eq!(landed, kind, "{name}"),
        }
        parsed += 1;
    }
    println!(
        "Meta examples: {parsed} /messages bodies parsed and round-tripped, {placeholders} placeholders skipped"
    );
    assert!(parsed >= 50, "only {parsed} example bodies parsed");
}

/// Every fixture and where it must land. A fixture missing from this table fails the test.
const FIXTURES: &[(&str, &str)] = &[
    ("text_reply_with_callback.json", "text"),
    ("text_onprem_no_type.json", "text"),
    ("text_nulls_and_extras.json", "text"),
    ("image_link_caption.json", "image"),
    ("audio_id.json", "audio"),
    ("video_link_caption.json", "video"),
    ("document_id_filename.json", "document"),
    ("sticker_link.json", "sticker"),
    ("location_numbers.json", "location"),
    ("location_strings.json", "location"),
    ("contacts_full.json", "contacts"),
    ("reaction_add.json", "reaction"),
    ("reaction_remove.json", "reaction"),
    ("interactive_button_image_header.json", "interactive:button"),
    ("interactive_list.json", "interactive:list"),
    ("interactive_cta_url_document_header.json", "interactive:cta_url"),
    ("interactive_flow_video_header.json", "interactive:flow"),
    ("interactive_product.json", "interactive:product"),
    ("interactive_product_list.json", "interactive:product_list"),
    ("interactive_catalog_message.json", "interactive:catalog_message"),
    ("interactive_location_request.json", "interactive:location_request_message"),
    ("interactive_unknown_order_details.json", "interactive:unknown:order_details"),
    ("template_named_params.json", "template"),
    ("template_currency_date_time.json", "template"),
    ("template_location_header.json", "template"),
    ("template_buttons.json", "template"),
    ("template_catalog_and_mpm.json", "template"),
    ("template_no_components.json", "template"),
    ("unknown_type_poll.json", "unknown:poll"),
    ("mark_read_typing.json", "mark_read"),
    ("mark_read_plain.json", "mark_read"),
];

fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn fixture_message(name: &str) -> OutboundMessage {
    serde_json::from_value(fixture(name)).unwrap()
}

#[test]
fn fixtures_round_trip_land_typed_and_validate() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every fixture file is listed in FIXTURES");
    for (name, expected) in FIXTURES {
        let request = round_trip(&fixture(name), name);
        assert_eq!(landing(&request), *expected, "{name}");
        request.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn fixtures_parse_into_the_expected_fields() {
    let m = fixture_message("text_onprem_no_type.json");
    assert_eq!(m.messaging_product, None);
    let Content::Text(t) = &m.content else { panic!("text") };
    assert_eq!(t.body, "Pakket onderweg 🚚");

    let m = fixture_message("text_nulls_and_extras.json");
    assert_eq!((m.context.as_ref(), m.recipient_type.as_ref()), (None, None));
    assert_eq!(m.extra["x_priority"], "high");

    let m = fixture_message("location_strings.json");
    let Content::Location(l) = &m.content else { panic!("location") };
    assert_eq!(l.latitude.as_f64(), Some(52.3731));
    assert_eq!(serde_json::to_value(&l.latitude).unwrap(), json!("52.3731"));

    let m = fixture_message("reaction_remove.json");
    let Content::Reaction(r) = &m.content else { panic!("reaction") };
    assert!(r.is_removal());

    let m = fixture_message("template_named_params.json");
    let Content::Template(t) = &m.content else { panic!("template") };
    let body = &t.components.as_ref().unwrap()[1];
    let first = &body.parameters.as_ref().unwrap()[0];
    assert_eq!(first.parameter_name.as_deref(), Some("first_name"));
    assert_eq!(first.value, ParameterValue::Text("Jordan".into()));

    let m = fixture_message("template_buttons.json");
    let Content::Template(t) = &m.content else { panic!("template") };
    let components = t.components.as_ref().unwrap();
    assert_eq!(components[2].sub_type, Some(ButtonSubType::CopyCode));
    assert_eq!(components[2].index, Some(ButtonIndex::Number(0)));
    assert_eq!(components[3].index, Some(ButtonIndex::Text("1".into())));
    assert_eq!(components[5].sub_type, Some(ButtonSubType::Flow));
    let ParameterValue::Action(action) = &components[5].parameters.as_ref().unwrap()[0].value else {
        panic!("action parameter")
    };
    assert_eq!(action.flow_token.as_deref(), Some("offer-9912"));

    let m = fixture_message("interactive_button_image_header.json");
    let Content::Interactive(i) = &m.content else { panic!("interactive") };
    assert!(matches!(&i.header.as_ref().unwrap().content, HeaderContent::Image(media) if media.id.is_some()));
}

#[test]
fn parse_errors_name_the_member() {
    let err =
        serde_json::from_value::<OutboundMessage>(json!({"to": "1", "type": "image", "image": {"id": 5}}))
            .unwrap_err()
            .to_string();
    assert!(err.contains("image"), "{err}");
    let err = serde_json::from_value::<OutboundMessage>(json!({"to": "1", "type": "text"})).unwrap_err();
    assert!(err.to_string().contains("missing field `text`"), "{err}");
    let no_buttons =
        json!({"to": "1", "type": "interactive", "interactive": {"type": "button", "action": {}}});
    let err = serde_json::from_value::<OutboundMessage>(no_buttons).unwrap_err();
    assert!(err.to_string().contains("buttons"), "{err}");
}

/// `parameters` as one object (as requests of Meta's own example collection send it) reads as a list of one
/// and is written as a list; a bad parameter still names what is wrong.
#[test]
fn a_single_parameter_object_reads_as_a_list() {
    let one = json!({"to": "1", "type": "template", "template": {"name": "t", "language": {"code": "en"},
        "components": [{"type": "body", "parameters": {"type": "text", "text": "Ada"}}]}});
    let m: OutboundMessage = serde_json::from_value(one).unwrap();
    assert_eq!(
        body_of(&m)["template"]["components"][0]["parameters"],
        json!([{"type": "text", "text": "Ada"}])
    );
    let bad = json!({"to": "1", "type": "template", "template": {"name": "t", "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [{"type": "text"}]}]}});
    let err = serde_json::from_value::<OutboundMessage>(bad).unwrap_err().to_string();
    assert!(err.contains("text"), "{err}");
}

/// A media header written flat, its link beside `type` (as On-Premises request collections send it), reads as
/// Meta's shape and is written nested; one that is already nested is left as it is.
#[test]
fn a_flat_media_header_parameter_is_nested_under_its_type() {
    let template = |parameters: Value| {
        json!({"to": "1", "type": "template", "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "header", "parameters": parameters}]}})
    };
    let flat = template(json!([{"type": "image", "caption": "Hi", "link": "https://example.com/a.jpg"}]));
    let m: OutboundMessage = serde_json::from_value(flat).unwrap();
    assert_eq!(
        body_of(&m)["template"]["components"][0]["parameters"],
        json!([{"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "Hi"}}])
    );
    let one = template(json!({"type": "document", "id": "4490709327384033", "filename": "a.pdf"}));
    let m: OutboundMessage = serde_json::from_value(one).unwrap();
    assert_eq!(
        body_of(&m)["template"]["components"][0]["parameters"],
        json!([{"type": "document", "document": {"id": "4490709327384033", "filename": "a.pdf"}}])
    );
    let nested = json!([{"type": "video", "video": {"link": "https://example.com/a.mp4"}}]);
    let m: OutboundMessage = serde_json::from_value(template(nested.clone())).unwrap();
    assert_eq!(body_of(&m)["template"]["components"][0]["parameters"], nested);
}

const TO: &str = "16505551234";
const WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QUNCNjQ2RTFCMzUzNkZDNTMA";

fn body_of(m: &OutboundMessage) -> Value {
    serde_json::to_value(m).unwrap()
}

#[test]
fn constructors_write_the_documented_json() {
    let envelope = |kind: &str, payload: Value| json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO, "type": kind, kind: payload});
    let text = OutboundMessage::text(TO, "Hi https://example.com")
        .preview_url(true)
        .reply_to(WAMID)
        .with_callback_data("gw-1");
    let mut expected = envelope("text", json!({"body": "Hi https://example.com", "preview_url": true}));
    expected["context"] = json!({"message_id": WAMID});
    expected["biz_opaque_callback_data"] = json!("gw-1");
    assert_eq!(body_of(&text), expected);

    let cases = [
        (
            OutboundMessage::image(TO, MediaSource::link("https://example.com/a.jpg")),
            envelope("image", json!({"link": "https://example.com/a.jpg"})),
        ),
        (OutboundMessage::audio(TO, MediaSource::id("123")), envelope("audio", json!({"id": "123"}))),
        (
            OutboundMessage::video(TO, Media::id("9").with_caption("Clip")),
            envelope("video", json!({"id": "9", "caption": "Clip"})),
        ),
        (
            OutboundMessage::document(TO, Media::link("https://e.com/f.pdf").with_filename("f.pdf")),
            envelope("document", json!({"link": "https://e.com/f.pdf", "filename": "f.pdf"})),
        ),
        (OutboundMessage::sticker(TO, Media::id("77")), envelope("sticker", json!({"id": "77"}))),
        (
            OutboundMessage::location(
                TO,
                Location::new(37.48, -122.14).with_name("HQ").with_address("1 Main St"),
            ),
            envelope(
                "location",
                json!({"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Main St"}),
            ),
        ),
        (
            OutboundMessage::reaction(TO, WAMID, "👍"),
            envelope("reaction", json!({"message_id": WAMID, "emoji": "👍"})),
        ),
        (
            OutboundMessage::remove_reaction(TO, WAMID),
            envelope("reaction", json!({"message_id": WAMID, "emoji": ""})),
        ),
        (
            OutboundMessage::contacts(
                TO,
                [Contact::new(ContactName::new("Ada Lovelace", "Ada").with_last_name("Lovelace"))
                    .with_phone("+44 20 7946 0000", Some("442079460000".into()))],
            ),
            envelope(
                "contacts",
                json!([{"name": {"formatted_name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"},
                         "phones": [{"phone": "+44 20 7946 0000", "wa_id": "442079460000"}]}]),
            ),
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(body_of(&message), expected);
        message.validate().unwrap();
    }
}

#[test]
fn template_builders_write_the_documented_json() {
    let template = Template::new("order_update", "en_US")
        .header_text("June")
        .body_text(["Ada", "#1042"])
        .quick_reply_button(0, "stop")
        .url_button(1, "track/1042")
        .copy_code_button(2, "SAVE10")
        .flow_button(3, "tok-1", Some(json!({"step": 1})));
    let m = OutboundMessage::template(TO, template);
    m.validate().unwrap();
    assert_eq!(
        body_of(&m)["template"],
        json!({
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "June"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Ada"}, {"type": "text", "text": "#1042"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "stop"}]},
                {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "track/1042"}]},
                {"type": "button", "sub_type": "copy_code", "index": "2", "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]},
                {"type": "button", "sub_type": "flow", "index": "3", "parameters": [{"type": "action", "action": {"flow_token": "tok-1", "flow_action_data": {"step": 1}}}]}
            ]
        })
    );

    let named = Template::new("welcome", "pt_BR")
        .header(Parameter::location(Location::new(-23.55, -46.63)))
        .body_named([("first_name", "Bia")])
        .body([Parameter::currency("R$ 10,00", "BRL", 10_000), Parameter::date_time("amanhã")]);
    assert_eq!(
        serde_json::to_value(&named).unwrap()["components"],
        json!([
            {"type": "header", "parameters": [{"type": "location", "location": {"latitude": -23.55, "longitude": -46.63}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Bia", "parameter_name": "first_name"}]},
            {"type": "body", "parameters": [
                {"type": "currency", "currency": {"fallback_value": "R$ 10,00", "code": "BRL", "amount_1000": 10000}},
                {"type": "date_time", "date_time": {"fallback_value": "amanhã"}}]}
        ])
    );
}

#[test]
fn interactive_builders_write_the_documented_json() {
    let interactive = |m: &OutboundMessage| body_of(m)["interactive"].clone();
    let buttons = OutboundMessage::interactive(
        TO,
        Interactive::buttons("Continue?", [ReplyButton::new("y", "Yes"), ReplyButton::new("n", "No")])
            .with_header(Header::text("Checkout"))
            .with_footer("Reply any time"),
    );
    assert_eq!(
        interactive(&buttons),
        json!({"type": "button", "header": {"type": "text", "text": "Checkout"}, "body": {"text": "Continue?"},
               "footer": {"text": "Reply any time"},
               "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}},
                                      {"type": "reply", "reply": {"id": "n", "title": "No"}}]}})
    );
    let list = OutboundMessage::interactive(
        TO,
        Interactive::list(
            "Pick one",
            "Options",
            [ListSection::untitled([ListRow::new("a", "A").with_description("First")])],
        ),
    );
    assert_eq!(
        interactive(&list),
        json!({"type": "list", "body": {"text": "Pick one"},
               "action": {"button": "Options", "sections": [{"rows": [{"id": "a", "title": "A", "description": "First"}]}]}})
    );
    let cta =
        OutboundMessage::interactive(TO, Interactive::cta_url("Docs", "Open", "https://example.com/docs"));
    assert_eq!(
        interactive(&cta),
        json!({"type": "cta_url", "body": {"text": "Docs"},
               "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com/docs"}}})
    );
    let flow = OutboundMessage::interactive(
        TO,
        Interactive::flow("Sign up", FlowParameters::by_id("1234", "tok", "Start").navigate("WELCOME", None)),
    );
    assert_eq!(
        interactive(&flow),
        json!({"type": "flow", "body": {"text": "Sign up"},
               "action": {"name": "flow", "parameters": {"flow_message_version": "3", "flow_token": "tok", "flow_id": "1234",
                          "flow_cta": "Start", "flow_action": "navigate", "flow_action_payload": {"screen": "WELCOME"}}}})
    );
    let product = OutboundMessage::interactive(TO, Interactive::product("cat1", "sku1"));
    assert_eq!(
        interactive(&product),
        json!({"type": "product", "action": {"catalog_id": "cat1", "product_retailer_id": "sku1"}})
    );
    let products = OutboundMessage::interactive(
        TO,
        Interactive::product_list(
            "Picks",
            "For you",
            "cat1",
            [ProductSection::new("Tea", ["t1".to_owned()])],
        ),
    );
    assert_eq!(
        interactive(&products),
        json!({"type": "product_list", "header": {"type": "text", "text": "Picks"}, "body": {"text": "For you"},
               "action": {"catalog_id": "cat1", "sections": [{"title": "Tea", "product_items": [{"product_retailer_id": "t1"}]}]}})
    );
    let catalog = OutboundMessage::interactive(TO, Interactive::catalog_message("Shop", Some("t1".into())));
    assert_eq!(
        interactive(&catalog),
        json!({"type": "catalog_message", "body": {"text": "Shop"},
               "action": {"name": "catalog_message", "parameters": {"thumbnail_product_retailer_id": "t1"}}})
    );
    let location = OutboundMessage::interactive(TO, Interactive::location_request("Where are you?"));
    assert_eq!(
        interactive(&location),
        json!({"type": "location_request_message", "body": {"text": "Where are you?"}, "action": {"name": "send_location"}})
    );
    for m in [buttons, list, cta, flow, product, products, catalog, location] {
        m.validate().unwrap();
    }
}

#[test]
fn mark_read_writes_the_documented_json() {
    let receipt = MarkRead::new(WAMID).with_typing_indicator();
    receipt.validate().unwrap();
    assert_eq!(
        serde_json::to_value(&receipt).unwrap(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": WAMID, "typing_indicator": {"type": "text"}})
    );
    assert_eq!(
        serde_json::to_value(MarkRead::new(WAMID)).unwrap(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": WAMID})
    );
    let with_null = json!({"messaging_product": "whatsapp", "status": "read", "message_id": WAMID, "typing_indicator": null});
    round_trip(&with_null, "explicit null typing indicator");
    let mut bad = MarkRead::new(WAMID);
    bad.status = "delivered".into();
    assert_eq!(bad.validate().unwrap_err().field(), "status");
    assert_eq!(MarkRead::new("").validate().unwrap_err(), missing("message_id"));
}

// ---- limits: at the limit passes, one past fails with the field, the size found and the limit ----

/// `n` characters, each two bytes long, so character and byte counts differ.
fn chars(n: usize) -> String {
    "é".repeat(n)
}

fn too_long(field: &str, found: usize, limit: usize) -> ValidationError {
    ValidationError::TooLong { field: field.to_owned(), found, limit }
}

fn too_many(field: &str, found: usize, limit: usize) -> ValidationError {
    ValidationError::TooMany { field: field.to_owned(), found, limit }
}

fn missing(field: &str) -> ValidationError {
    ValidationError::Missing { field: field.to_owned() }
}

/// Asserts that `build(limit)` validates and `build(limit + 1)` fails with `expected(limit + 1)`.
fn at_limit(
    limit: usize,
    build: impl Fn(usize) -> OutboundMessage,
    expected: impl Fn(usize) -> ValidationError,
) {
    build(limit).validate().unwrap_or_else(|e| panic!("at the limit {limit}: {e}"));
    assert_eq!(build(limit + 1).validate().unwrap_err(), expected(limit + 1));
}

fn invalid_field(m: &OutboundMessage) -> String {
    match m.validate().unwrap_err() {
        ValidationError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn envelope_limits() {
    assert_eq!(OutboundMessage::text(" ", "hi").validate().unwrap_err(), missing("to"));
    at_limit(
        512,
        |n| OutboundMessage::text(TO, "hi").with_callback_data("x".repeat(n)),
        |n| ValidationError::TooManyBytes { field: "biz_opaque_callback_data".into(), found: n, limit: 512 },
    );
    // Bytes, not characters: 128 four-byte emoji are exactly 512 bytes.
    OutboundMessage::text(TO, "hi").with_callback_data("😀".repeat(128)).validate().unwrap();
    let err = OutboundMessage::text(TO, "hi").with_callback_data("😀".repeat(129)).validate().unwrap_err();
    assert_eq!(
        err,
        ValidationError::TooManyBytes { field: "biz_opaque_callback_data".into(), found: 516, limit: 512 }
    );
    at_limit(
        128,
        |n| OutboundMessage::text(TO, "hi").reply_to("w".repeat(n)),
        |n| too_long("context.message_id", n, 128),
    );
    let mut m = OutboundMessage::text(TO, "hi");
    m.messaging_product = Some("telegram".into());
    assert_eq!(invalid_field(&m), "messaging_product");
    m.messaging_product = None;
    m.validate().unwrap();
}

#[test]
fn text_and_media_limits() {
    at_limit(4096, |n| OutboundMessage::text(TO, chars(n)), |n| too_long("text.body", n, 4096));
    let err = OutboundMessage::text(TO, chars(4097)).validate().unwrap_err();
    assert_eq!(err.to_string(), "text.body is 4097 characters long; at most 4096 allowed");
    assert_eq!(OutboundMessage::text(TO, "").validate().unwrap_err(), missing("text.body"));

    let link = || Media::link("https://example.com/x");
    at_limit(
        1024,
        |n| OutboundMessage::image(TO, link().with_caption(chars(n))),
        |n| too_long("image.caption", n, 1024),
    );
    at_limit(
        1024,
        |n| OutboundMessage::video(TO, link().with_caption(chars(n))),
        |n| too_long("video.caption", n, 1024),
    );
    at_limit(
        1024,
        |n| OutboundMessage::document(TO, link().with_caption(chars(n))),
        |n| too_long("document.caption", n, 1024),
    );
    assert_eq!(invalid_field(&OutboundMessage::audio(TO, link().with_caption("x"))), "audio.caption");
    assert_eq!(invalid_field(&OutboundMessage::sticker(TO, link().with_caption("x"))), "sticker.caption");
    assert_eq!(invalid_field(&OutboundMessage::image(TO, link().with_filename("a.png"))), "image.filename");
    OutboundMessage::document(TO, link().with_filename("a.pdf")).validate().unwrap();

    let both = Media { id: Some("1".into()), ..link() };
    assert_eq!(
        OutboundMessage::image(TO, both).validate().unwrap_err(),
        ValidationError::Conflict { field: "image".into(), first: "id", second: "link" }
    );
    assert_eq!(OutboundMessage::audio(TO, Media::default()).validate().unwrap_err(), missing("audio.id"));
    for bad in ["ftp://example.com/a.jpg", "https://", "example.com/a.jpg", "https:///a.jpg"] {
        assert_eq!(invalid_field(&OutboundMessage::image(TO, Media::link(bad))), "image.link", "{bad}");
    }
    OutboundMessage::image(TO, Media::link("HTTP://example.com/a.jpg")).validate().unwrap();
}

fn with_interactive(i: Interactive) -> OutboundMessage {
    OutboundMessage::interactive(TO, i)
}

fn buttons(n: usize) -> Vec<ReplyButton> {
    (0..n).map(|i| ReplyButton::new(format!("id{i}"), format!("Option {i}"))).collect()
}

#[test]
fn interactive_common_limits() {
    let base = || Interactive::buttons("Pick", buttons(2));
    at_limit(
        60,
        |n| with_interactive(base().with_header(Header::text(chars(n)))),
        |n| too_long("interactive.header.text", n, 60),
    );
    at_limit(
        60,
        |n| with_interactive(base().with_footer(chars(n))),
        |n| too_long("interactive.footer.text", n, 60),
    );
    at_limit(
        1024,
        |n| with_interactive(base().with_body(chars(n))),
        |n| too_long("interactive.body.text", n, 1024),
    );
    let no_body = |i: Interactive| Interactive { body: None, ..i };
    for i in [
        base(),
        Interactive::list("b", "Open", [ListSection::untitled([ListRow::new("a", "A")])]),
        Interactive::cta_url("b", "Open", "https://example.com"),
        Interactive::flow("b", FlowParameters::by_id("1", "t", "Go")),
        Interactive::product_list("H", "b", "c", [ProductSection::new("S", ["p".to_owned()])]),
    ] {
        assert_eq!(with_interactive(no_body(i)).validate().unwrap_err(), missing("interactive.body"));
    }
    with_interactive(Interactive::product("c", "p")).validate().unwrap();
    let with_header = Interactive::product("c", "p").with_header(Header::text("No"));
    assert_eq!(invalid_field(&with_interactive(with_header)), "interactive.header");
    let bad_media = base().with_header(Header::image(Media::link("file:///etc/passwd")));
    assert_eq!(invalid_field(&with_interactive(bad_media)), "interactive.header.image.link");
}

#[test]
fn reply_button_limits() {
    at_limit(
        3,
        |n| with_interactive(Interactive::buttons("Pick", buttons(n))),
        |n| too_many("interactive.action.buttons", n, 3),
    );
    assert_eq!(
        with_interactive(Interactive::buttons("Pick", [])).validate().unwrap_err(),
        ValidationError::TooFew { field: "interactive.action.buttons".into(), found: 0, limit: 1 }
    );
    let titled = |n| {
        with_interactive(Interactive::buttons(
            "Pick",
            [ReplyButton::new("a", "A"), ReplyButton::new("b", chars(n))],
        ))
    };
    at_limit(20, titled, |n| too_long("interactive.action.buttons[1].reply.title", n, 20));
    let with_id = |n| with_interactive(Interactive::buttons("Pick", [ReplyButton::new("i".repeat(n), "A")]));
    at_limit(256, with_id, |n| too_long("interactive.action.buttons[0].reply.id", n, 256));
    let same = Interactive::buttons("Pick", [ReplyButton::new("a", "Yes"), ReplyButton::new("b", "Yes")]);
    assert_eq!(
        with_interactive(same).validate().unwrap_err(),
        ValidationError::Duplicate {
            field: "interactive.action.buttons[1].reply.title".into(),
            value: "Yes".into()
        }
    );
}

fn list_of(sections: Vec<ListSection>) -> OutboundMessage {
    with_interactive(Interactive::list("Choose", "Open", sections))
}

fn rows(n: usize) -> Vec<ListRow> {
    (0..n).map(|i| ListRow::new(format!("r{i}"), format!("Row {i}"))).collect()
}

#[test]
fn list_limits() {
    let one = |row: ListRow| list_of(vec![ListSection::new("S", [row])]);
    at_limit(
        20,
        |n| with_interactive(Interactive::list("Choose", chars(n), [ListSection::untitled(rows(1))])),
        |n| too_long("interactive.action.button", n, 20),
    );
    at_limit(
        10,
        |n| list_of((0..n).map(|i| ListSection::new(format!("S{i}"), rows(1))).collect()),
        |n| too_many("interactive.action.sections", n, 10),
    );
    at_limit(
        10,
        |n| list_of(vec![ListSection::new("A", rows(5)), ListSection::new("B", rows(n - 5))]),
        |n| too_many("interactive.action.sections[*].rows", n, 10),
    );
    at_limit(
        24,
        |n| list_of(vec![ListSection::new(chars(n), rows(1))]),
        |n| too_long("interactive.action.sections[0].title", n, 24),
    );
    at_limit(
        200,
        |n| one(ListRow::new("i".repeat(n), "t")),
        |n| too_long("interactive.action.sections[0].rows[0].id", n, 200),
    );
    at_limit(
        24,
        |n| one(ListRow::new("i", chars(n))),
        |n| too_long("interactive.action.sections[0].rows[0].title", n, 24),
    );
    at_limit(
        72,
        |n| one(ListRow::new("i", "t").with_description(chars(n))),
        |n| too_long("interactive.action.sections[0].rows[0].description", n, 72),
    );
    // A title is required only when there is more than one section.
    list_of(vec![ListSection::untitled(rows(2))]).validate().unwrap();
    assert_eq!(
        list_of(vec![ListSection::new("A", rows(1)), ListSection::untitled(rows(1))]).validate().unwrap_err(),
        missing("interactive.action.sections[1].title")
    );
    assert_eq!(
        list_of(vec![]).validate().unwrap_err(),
        ValidationError::TooFew { field: "interactive.action.sections".into(), found: 0, limit: 1 }
    );
    let image_header = Interactive::list("Choose", "Open", [ListSection::untitled(rows(1))])
        .with_header(Header::image(Media::id("1")));
    assert_eq!(invalid_field(&with_interactive(image_header)), "interactive.header.type");
}

#[test]
fn cta_url_and_product_list_limits() {
    at_limit(
        20,
        |n| with_interactive(Interactive::cta_url("b", chars(n), "https://example.com")),
        |n| too_long("interactive.action.parameters.display_text", n, 20),
    );
    let http = with_interactive(Interactive::cta_url("b", "Open", "http://example.com"));
    assert_eq!(invalid_field(&http), "interactive.action.parameters.url");

    let products = |sections: Vec<ProductSection>| {
        with_interactive(Interactive::product_list("Picks", "Body", "cat", sections))
    };
    let skus = |n: usize| (0..n).map(|i| format!("sku{i}")).collect::<Vec<_>>();
    at_limit(
        10,
        |n| products((0..n).map(|i| ProductSection::new(format!("S{i}"), skus(1))).collect()),
        |n| too_many("interactive.action.sections", n, 10),
    );
    at_limit(
        30,
        |n| products(vec![ProductSection::new("A", skus(10)), ProductSection::new("B", skus(n - 10))]),
        |n| too_many("interactive.action.sections[*].product_items", n, 30),
    );
    let no_header = Interactive {
        header: None,
        ..Interactive::product_list("H", "B", "c", [ProductSection::new("S", skus(1))])
    };
    assert_eq!(with_interactive(no_header).validate().unwrap_err(), missing("interactive.header"));
}

#[test]
fn contacts_and_reaction_limits() {
    let card = |name: ContactName| OutboundMessage::contacts(TO, [Contact::new(name)]);
    card(ContactName::new("Ada", "Ada")).validate().unwrap();
    assert_eq!(
        card(ContactName::new(" ", "Ada")).validate().unwrap_err(),
        missing("contacts[0].name.formatted_name")
    );
    let only_formatted = ContactName { first_name: None, ..ContactName::new("Ada", "") };
    assert_eq!(invalid_field(&card(only_formatted)), "contacts[0].name");
    let blank_first = ContactName::new("Ada", " ");
    assert_eq!(invalid_field(&card(blank_first)), "contacts[0].name");
    assert_eq!(
        OutboundMessage::contacts(TO, []).validate().unwrap_err(),
        ValidationError::TooFew { field: "contacts".into(), found: 0, limit: 1 }
    );
    OutboundMessage::remove_reaction(TO, WAMID).validate().unwrap();
    assert_eq!(
        OutboundMessage::reaction(TO, "", "👍").validate().unwrap_err(),
        missing("reaction.message_id")
    );
}

#[test]
fn template_limits() {
    let send = |t: Template| OutboundMessage::template(TO, t);
    assert_eq!(send(Template::new("", "en_US")).validate().unwrap_err(), missing("template.name"));
    assert_eq!(send(Template::new("t", "")).validate().unwrap_err(), missing("template.language.code"));
    at_limit(
        60,
        |n| send(Template::new("t", "en").header_text(chars(n))),
        |n| too_long("template.components[0].parameters[0].text", n, 60),
    );
    at_limit(
        1024,
        |n| send(Template::new("t", "en").body_text(["ok".to_owned(), chars(n)])),
        |n| too_long("template.components[0].parameters[1].text", n, 1024),
    );
    at_limit(
        1024,
        |n| send(Template::new("t", "en").body_named([("name", chars(n))])),
        |n| too_long("template.components[0].parameters[0].text", n, 1024),
    );
    send(Template::new("t", "en").quick_reply_button(9, "p")).validate().unwrap();
    let index_field = |t: Template| invalid_field(&send(t));
    assert_eq!(
        index_field(Template::new("t", "en").quick_reply_button(10, "p")),
        "template.components[0].index"
    );
    let mut numeric = wabridge_types::send::Component::button(ButtonSubType::Url, 0, [Parameter::text("x")]);
    numeric.index = Some(ButtonIndex::Number(9));
    send(Template::new("t", "en").component(numeric.clone())).validate().unwrap();
    numeric.index = Some(ButtonIndex::Number(-1));
    assert_eq!(
        index_field(Template::new("t", "en").component(numeric.clone())),
        "template.components[0].index"
    );
    numeric.index = Some(ButtonIndex::Text("first".into()));
    assert_eq!(
        index_field(Template::new("t", "en").component(numeric.clone())),
        "template.components[0].index"
    );
    numeric.index = None;
    assert_eq!(
        send(Template::new("t", "en").component(numeric)).validate().unwrap_err(),
        missing("template.components[0].index")
    );
    let header = Template::new("t", "en").header(Parameter::image(MediaSource::link("ftp://x/y.png")));
    assert_eq!(invalid_field(&send(header)), "template.components[0].parameters[0].image.link");
    // A long text parameter of a button (a URL suffix) has no documented limit.
    send(Template::new("t", "en").url_button(0, chars(2000))).validate().unwrap();
}
