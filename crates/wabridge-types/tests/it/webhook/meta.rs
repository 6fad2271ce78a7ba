//! Meta's own example payloads: each valid one lands in its specific typed variant and round-trips.

use serde_json::{Map, Value};
use wabridge_types::webhook::{Envelope, EventKind, MessageContent, Scalar, StatusKind};

use super::{messages_value, only_message, only_status, round_trip};

const META_EXAMPLES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference/meta-examples/webhook_payloads.json");

type Check = fn(&Envelope);

fn meta_checks() -> Vec<(&'static str, Check)> {
    vec![
        ("received_text_message", |e| {
            let m = only_message(e);
            assert!(matches!(&m.content, MessageContent::Text(t) if t.body == "Hello this is an answer"));
            assert_eq!(m.timestamp.as_i64(), Some(1_603_059_201));
        }),
        ("received_text_message_with_show_security_notifications", |e| {
            let m = only_message(e);
            assert!(matches!(m.content, MessageContent::Text(_)));
            let identity = m.identity.as_ref().unwrap();
            assert_eq!(identity.acknowledged, Some(true));
            assert_eq!(identity.created_timestamp, Some(Scalar::Number(1_602_532_300_000_i64.into())));
        }),
        ("received_message_with_reaction", |e| {
            let MessageContent::Reaction(r) = &only_message(e).content else { panic!("not a reaction") };
            assert_eq!(r.emoji.as_deref(), Some("<emoji>"));
            assert!(!r.is_removal());
            // Meta's example misspells `message_id`: kept, not lost.
            assert_eq!(r.message_id, None);
            assert_eq!(r.extra["messsage_id"], "<WAMID>");
        }),
        ("received_media_message_with_image", |e| {
            let MessageContent::Image(m) = &only_message(e).content else { panic!("not an image") };
            assert_eq!(m.caption.as_deref(), Some("This is a caption"));
            assert_eq!(m.id.as_str(), "2754859441498128");
        }),
        ("received_media_message_with_sticker", |e| {
            let MessageContent::Sticker(m) = &only_message(e).content else { panic!("not a sticker") };
            assert_eq!(m.animated, Some(false));
        }),
        ("received_contact_messages", |e| {
            let m = only_message(e);
            let MessageContent::Contacts(cards) = &m.content else { panic!("not contacts") };
            assert!(m.type_omitted);
            assert_eq!(m.type_name(), "contacts");
            assert_eq!(cards.len(), 1);
            let name = cards[0].name.as_ref().unwrap();
            assert_eq!(name.formatted_name.as_deref(), Some("<CONTACT_FORMATTED_NAME>"));
            assert_eq!(cards[0].phones.as_ref().unwrap()[0].kind.as_deref(), Some("<HOME|WORK>"));
            let again = serde_json::to_value(m).unwrap();
            assert!(again.get("type").is_none(), "a `type` was added");
        }),
        ("received_message_triggered_by_click_to_whatsapp_ads", |e| {
            let m = only_message(e);
            assert!(matches!(m.content, MessageContent::Text(_)));
            assert_eq!(m.referral.as_ref().unwrap().source_id.as_deref(), Some("<AD_ID>"));
        }),
        ("received_unknown_messages", |e| {
            let m = only_message(e);
            assert!(
                matches!(&m.content, MessageContent::Unsupported { type_name } if type_name == "unknown")
            );
            assert_eq!(m.errors()[0].code, 130_501);
            assert_eq!(m.errors()[0].details(), Some("Message type is not currently supported"));
        }),
        ("message_status_update_notifications", |e| {
            let s = only_status(e);
            assert_eq!(s.status, StatusKind::Sent);
            assert!(!s.is_payment());
            assert_eq!(s.recipient_id.as_ref().unwrap().as_str(), "16315551234");
            assert!(messages_value(e).contacts.is_none());
        }),
        ("received_callback_from_a_quick_reply_button_click", |e| {
            let m = only_message(e);
            let MessageContent::Button(b) = &m.content else { panic!("not a button") };
            assert_eq!(b.payload.as_deref(), Some("No-Button-Payload"));
            assert_eq!(
                m.context.as_ref().unwrap().id.as_ref().unwrap().as_str(),
                "wamid.gBGGFlCGg0cvAgkLFm4e9tICiTI"
            );
        }),
        ("received_product_enquiry_message", |e| {
            let m = only_message(e);
            assert!(matches!(m.content, MessageContent::Text(_)));
            let product = m.context.as_ref().unwrap().referred_product.as_ref().unwrap();
            assert_eq!(product.product_retailer_id.as_deref(), Some("PRODUCT_ID"));
        }),
        ("received_order_messages", |e| {
            let MessageContent::Order(o) = &only_message(e).content else { panic!("not an order") };
            assert_eq!(o.catalog_id, "the-catalog_id");
            assert_eq!(o.product_items[0].quantity, Scalar::Text("number-of-item".into()));
        }),
        ("status_transaction_status_order_details_message", |e| {
            let s = only_status(e);
            assert!(s.is_payment());
            assert_eq!(s.status, StatusKind::Other("<captured | failed | pending>".into()));
            assert!(!s.advances(None));
            let events = e.events();
            assert_eq!(events.len(), 1);
            assert!(matches!(events[0].kind, EventKind::Payment { .. }));
            assert_eq!(events[0].dedupe_key, "payment:wamid.ID:<captured | failed | pending>");
        }),
    ]
}

#[test]
fn meta_examples_parse_into_their_typed_variants_and_round_trip() {
    let text = std::fs::read_to_string(META_EXAMPLES).unwrap();
    let examples: Map<String, Value> = serde_json::from_str(&text).unwrap();
    let checks = meta_checks();
    let (mut valid, mut placeholders) = (0, 0);
    for (name, example) in &examples {
        let payload = &example["payload"];
        if payload.get("__unparsed_raw__").is_some() {
            placeholders += 1;
            continue;
        }
        valid += 1;
        let envelope = round_trip(payload);
        let (_, check) = checks
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no expectation for Meta example {name}"));
        check(&envelope);
        // Every example gives events, each with a key.
        assert!(envelope.events().iter().all(|ev| !ev.dedupe_key.is_empty()), "{name}");
    }
    assert_eq!((valid, placeholders), (13, 9));
    assert_eq!(checks.len(), 13);
}
