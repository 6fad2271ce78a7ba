//! Our fixtures of inbound messages, in the older and the current (§8) shapes.

use wabridge_types::webhook::{InteractiveReply, MessageContent, Scalar, SystemKind};

use super::{fixture, messages_value, only_message};

#[test]
fn text_in_older_and_current_shapes() {
    let (_, old) = fixture("messages_text_old.json");
    assert_eq!(old.entry[0].time, Some(Scalar::Number(1_749_416_390.into())));
    let m = only_message(&old);
    assert!(matches!(&m.content, MessageContent::Text(t) if t.body == "Is the shop open on Sunday?"));
    assert_eq!(m.from_user_id, None);

    let (_, current) = fixture("messages_text_current.json");
    let value = messages_value(&current);
    let m = only_message(&current);
    let MessageContent::Text(text) = &m.content else { panic!("not text") };
    assert_eq!(text.extra["preview_url"], false);
    assert_eq!(m.from_user_id.as_deref(), Some("SE.11112222333344445555"));
    assert_eq!(m.from_parent_user_id.as_deref(), Some("SE.99998888777766665555"));
    let contact = &value.contacts()[0];
    assert_eq!(contact.profile.as_ref().unwrap().username.as_deref(), Some("@tomasb"));
    assert_eq!(contact.parent_user_id.as_deref(), Some("SE.99998888777766665555"));
    assert_eq!(contact.identity_key_hash.as_deref(), Some("q1w2e3r4t5y6"));
}

#[test]
fn media_messages() {
    let (_, e) = fixture("messages_media.json");
    let m = messages_value(&e).messages();
    let MessageContent::Image(image) = &m[0].content else { panic!("image") };
    assert_eq!(image.caption.as_deref(), Some("Receipt"));
    assert_eq!(image.url.as_deref(), Some("https://lookaside.example/img"));
    assert!(matches!(m[1].content, MessageContent::Video(_)));
    let MessageContent::Document(doc) = &m[2].content else { panic!("document") };
    assert_eq!(doc.filename.as_deref(), Some("invoice-0042.pdf"));
    let MessageContent::Audio(audio) = &m[3].content else { panic!("audio") };
    assert_eq!(audio.voice, Some(true));
    let MessageContent::Sticker(sticker) = &m[4].content else { panic!("sticker") };
    assert_eq!(sticker.animated, Some(true));
}

#[test]
fn location_and_shared_contacts() {
    let (body, e) = fixture("messages_location_contacts.json");
    let m = messages_value(&e).messages();
    let MessageContent::Location(loc) = &m[0].content else { panic!("location") };
    assert_eq!(loc.latitude.as_f64(), Some(48.8566));
    assert_eq!(loc.name.as_deref(), Some("Depot Nord"));
    let MessageContent::Contacts(cards) = &m[1].content else { panic!("contacts") };
    assert!(!m[1].type_omitted);
    assert_eq!(cards[0].phones.as_ref().unwrap()[0].wa_id.as_ref().unwrap().as_str(), "33600000005");
    assert!(cards[0].extra.contains_key("emails"));
    // No `type`: inferred from the content key, and not added back.
    let MessageContent::Location(loc) = &m[2].content else { panic!("untyped location") };
    assert!(m[2].type_omitted);
    assert_eq!(loc.latitude, Scalar::Text("48.85".into()));
    let messages = &body["entry"][0]["changes"][0]["value"]["messages"];
    assert!(messages[2].get("type").is_none());
}

#[test]
fn interactive_replies() {
    let (_, e) = fixture("messages_interactive.json");
    let m = messages_value(&e).messages();
    let reply = |i: usize| match &m[i].content {
        MessageContent::Interactive(interactive) => &interactive.reply,
        other => panic!("not interactive: {other:?}"),
    };
    assert!(matches!(reply(0), InteractiveReply::ButtonReply(b) if b.id == "confirm-yes"));
    assert!(
        matches!(reply(1), InteractiveReply::ListReply(l) if l.description.as_deref() == Some("Morning slot"))
    );
    let InteractiveReply::NfmReply(nfm) = reply(2) else { panic!("nfm") };
    assert_eq!(nfm.response().unwrap()["flow_token"], "tok-1");
    assert_eq!(nfm.name.as_deref(), Some("flow"));
    let InteractiveReply::Unknown { type_name, value } = reply(3) else { panic!("unknown interactive") };
    assert_eq!(type_name, "call_permission_reply");
    assert_eq!(value.as_ref().unwrap()["response"], "accept");
    assert_eq!(m[0].context.as_ref().unwrap().from.as_deref(), Some("15550001111"));
}

#[test]
fn template_button_reaction_and_unreaction() {
    let (_, e) = fixture("messages_button_reaction.json");
    let m = messages_value(&e).messages();
    let MessageContent::Button(button) = &m[0].content else { panic!("button") };
    assert_eq!(button.payload.as_deref(), Some("RESCHEDULE"));
    assert_eq!(button.text.as_deref(), Some("Reschedule"));
    let reaction = |i: usize| match &m[i].content {
        MessageContent::Reaction(r) => r,
        other => panic!("not a reaction: {other:?}"),
    };
    assert_eq!(reaction(1).emoji.as_deref(), Some("👍"));
    assert!(!reaction(1).is_removal());
    assert!(reaction(2).is_removal(), "absent emoji removes");
    assert!(reaction(3).is_removal(), "empty emoji removes");
    assert_eq!(reaction(3).message_id.as_ref().unwrap().as_str(), "wamid.OUT0010");
}

#[test]
fn order_and_system_messages() {
    let (_, e) = fixture("messages_order_system.json");
    let m = messages_value(&e).messages();
    let MessageContent::Order(order) = &m[0].content else { panic!("order") };
    assert_eq!(order.product_items.len(), 2);
    assert_eq!(order.product_items[0].quantity.as_i64(), Some(2));
    assert_eq!(order.product_items[0].item_price.as_f64(), Some(19.9));
    let MessageContent::System(changed) = &m[1].content else { panic!("system") };
    assert_eq!(changed.kind, Some(SystemKind::UserChangedNumber));
    assert_eq!(changed.new_wa_id.as_ref().unwrap().as_str(), "4915100000009");
    let MessageContent::System(identity) = &m[2].content else { panic!("system") };
    assert_eq!(identity.kind, Some(SystemKind::CustomerIdentityChanged));
    assert_eq!(m[2].identity.as_ref().unwrap().acknowledged, Some(false));
}

#[test]
fn referral_context_and_request_welcome() {
    let (_, e) = fixture("messages_referral_context.json");
    let m = messages_value(&e).messages();
    let referral = m[0].referral.as_ref().unwrap();
    assert_eq!(referral.ctwa_clid.as_deref(), Some("ARAkLk-clickid"));
    assert_eq!(referral.source_type.as_deref(), Some("ad"));
    let context = m[1].context.as_ref().unwrap();
    assert_eq!((context.forwarded, context.frequently_forwarded), (Some(true), Some(true)));
    assert_eq!(context.id, None);
    assert_eq!(m[2].content, MessageContent::RequestWelcome);
}

#[test]
fn unsupported_message_with_errors_stays_typed() {
    let (_, e) = fixture("messages_unsupported.json");
    let m = only_message(&e);
    assert!(matches!(&m.content, MessageContent::Unsupported { type_name } if type_name == "unsupported"));
    let error = &m.errors()[0];
    assert_eq!(error.code, 131_051);
    assert_eq!(error.details(), Some("Message type is currently not supported."));
    assert!(error.href.is_some());
    assert_eq!(m.extra["unsupported"]["type"], "edit");
}

#[test]
fn unknown_message_types_are_kept() {
    let (_, e) = fixture("messages_unknown_type.json");
    let m = messages_value(&e).messages();
    let MessageContent::Unknown { type_name, value } = &m[0].content else { panic!("unknown") };
    assert_eq!(type_name, "hologram");
    assert_eq!(value.as_ref().unwrap()["frames"], 24);
    // A known type whose payload does not fit is kept too, rather than failing the webhook.
    assert!(matches!(&m[1].content, MessageContent::Unknown { type_name, .. } if type_name == "text"));
    // No type and no content key.
    assert!(m[2].type_omitted);
    assert!(
        matches!(&m[2].content, MessageContent::Unknown { type_name, value: None } if type_name.is_empty())
    );
}
