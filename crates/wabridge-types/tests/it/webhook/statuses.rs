//! Our fixtures of statuses, payment updates, value-level errors and explicit nulls; the ordering rule.

use serde_json::Value;
use wabridge_types::webhook::{EventKind, MessageContent, PricingModel, Scalar, StatusKind, moves_forward};

use super::{fixture, messages_value, only_status};

#[test]
fn statuses_in_the_older_shape() {
    let (_, e) = fixture("statuses_old.json");
    let value = messages_value(&e);
    assert!(value.contacts.is_none());
    let s = value.statuses();
    assert_eq!(
        s.iter().map(|s| s.status.clone()).collect::<Vec<_>>(),
        [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );
    let conversation = s[0].conversation.as_ref().unwrap();
    assert_eq!(conversation.origin.as_ref().unwrap().kind, "utility");
    assert_eq!(conversation.expiration_timestamp.as_ref().unwrap().as_i64(), Some(1_749_503_400));
    assert_eq!(s[0].pricing.as_ref().unwrap().pricing_model, Some(PricingModel::Cbp));
    assert_eq!(s[0].biz_opaque_callback_data.as_deref(), Some("gw-msg-0001"));
    assert!(s[1].conversation.as_ref().unwrap().expiration_timestamp.is_none());
}

#[test]
fn statuses_in_the_current_shape() {
    let (_, e) = fixture("statuses_current.json");
    let value = messages_value(&e);
    assert_eq!(value.contacts()[0].user_id.as_deref(), Some("SE.11112222333344445555"));
    let s = value.statuses();
    let pricing = s[0].pricing.as_ref().unwrap();
    assert_eq!(pricing.pricing_model, Some(PricingModel::Pmp));
    assert_eq!(pricing.kind.as_deref(), Some("regular"));
    assert!(s[0].conversation.is_none());
    assert_eq!(s[0].recipient_user_id.as_deref(), Some("SE.11112222333344445555"));
    assert_eq!(s[0].parent_recipient_user_id.as_deref(), Some("SE.99998888777766665555"));
    assert_eq!(s[1].status, StatusKind::Played);
    assert_eq!(s[2].status, StatusKind::Deleted);
    assert_eq!(s[3].status, StatusKind::Failed);
    assert_eq!(s[3].errors()[0].code, 131_026);
    assert_eq!(s[3].errors()[0].details(), Some("Message Undeliverable."));
    assert_eq!(s[4].status, StatusKind::Other("accepted_by_carrier".into()));

    let events = e.events();
    assert_eq!(events.len(), 5);
    for (event, status) in events.iter().zip(s) {
        assert_eq!(event.contact.as_deref(), Some("46700000002"));
        assert_eq!(event.dedupe_key, format!("status:{}:{}", status.id, status.status));
        assert_eq!(event.kind.status(), Some(status.status.clone()));
    }
    // The matching contact travels with each status; the unmatched one (no user id) still finds it by wa_id.
    assert_eq!(events[0].payload["contacts"][0]["profile"]["username"], "@tomasb");
    assert_eq!(events[4].payload["contacts"][0]["wa_id"], "46700000002");
    assert_eq!(events[0].contact_user_id.as_deref(), Some("SE.11112222333344445555"));
}

#[test]
fn payment_updates_are_not_message_statuses() {
    let (_, e) = fixture("payment.json");
    let s = only_status(&e);
    assert!(s.is_payment());
    assert_eq!(s.status, StatusKind::Other("captured".into()));
    assert!(!s.advances(None));
    assert!(!s.advances(Some(&StatusKind::Sent)));
    assert_eq!(s.extra["payment"]["reference_id"], "order-8841");
    let events = e.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Payment { status: "captured".into() });
    // The transaction's id is part of the key (the reference's sample without one: see meta.rs).
    assert_eq!(events[0].dedupe_key, "payment:wamid.ORDDETAILS01:captured:txn-1");
    assert_eq!(events[0].contact.as_deref(), Some("919800000006"));

    // Even a payment whose status reads "failed" never moves a message.
    let mut failed = s.clone();
    failed.status = StatusKind::Failed;
    assert!(!failed.advances(Some(&StatusKind::Sent)));
}

/// Two transactions of one order-details message that reach the same status are two events; a redelivery
/// of one of them is a duplicate; an update without a transaction keeps the key without one.
#[test]
fn payment_transactions_of_one_order_have_their_own_keys() {
    let (body, _) = fixture("payment.json");
    let with_transaction = |id: Option<&str>| {
        let mut body = body.clone();
        let payment = &mut body["entry"][0]["changes"][0]["value"]["statuses"][0]["payment"];
        match id {
            Some(id) => payment["transaction"]["id"] = Value::from(id),
            None => {
                payment.as_object_mut().unwrap().remove("transaction");
            }
        }
        let envelope: wabridge_types::webhook::Envelope = serde_json::from_value(body).unwrap();
        envelope.events().remove(0).dedupe_key
    };
    let first = with_transaction(Some("txn-1"));
    let second = with_transaction(Some("txn-2"));
    assert_ne!(first, second, "two transactions with one status must not collide");
    assert_eq!(first, with_transaction(Some("txn-1")), "a redelivery repeats the key");
    assert_eq!(with_transaction(None), "payment:wamid.ORDDETAILS01:captured");
}

#[test]
fn value_level_errors() {
    let (_, e) = fixture("value_errors.json");
    let value = messages_value(&e);
    assert_eq!(value.errors().len(), 2);
    assert_eq!(value.errors()[0].code, 131_047);
    assert_eq!(value.errors()[1].details(), None);
    let events = e.events();
    assert_eq!(events.len(), 2);
    for (event, code) in events.iter().zip([131_047, 130_472]) {
        assert_eq!(event.kind, EventKind::Error { code });
        assert!(event.dedupe_key.starts_with("messages:"));
        assert_eq!(event.dedupe_key.len(), "messages:".len() + 64);
        assert_eq!(event.payload["errors"].as_array().unwrap().len(), 1);
        assert_eq!(event.payload["metadata"]["phone_number_id"], "400000000000001");
        assert_eq!(event.contact, None);
    }
    assert_ne!(events[0].dedupe_key, events[1].dedupe_key);
}

#[test]
fn explicit_nulls_and_numeric_timestamps_are_kept() {
    let (body, e) = fixture("nulls_and_numbers.json");
    assert_eq!(e.entry[0].time, None);
    assert_eq!(e.entry[0].extra["time"], Value::Null);
    let value = messages_value(&e);
    let m = value.messages();
    assert_eq!(m[0].timestamp, Scalar::Number(1_749_419_000.into()));
    assert!(matches!(&m[0].content, MessageContent::Image(i) if i.caption.is_none()));
    assert!(
        matches!(&m[1].content, MessageContent::Unknown { type_name, value: None } if type_name == "text")
    );
    let s = &value.statuses()[0];
    assert_eq!(s.biz_opaque_callback_data, None);
    assert!(s.extra.contains_key("biz_opaque_callback_data"));
    assert_eq!(value.errors, Some(vec![]));
    let again = serde_json::to_value(&e).unwrap();
    assert_eq!(again["entry"][0]["changes"][0]["value"]["statuses"][0]["conversation"], Value::Null);
    assert_eq!(again, body);
}

fn permutations(items: &[StatusKind]) -> Vec<Vec<StatusKind>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

fn apply(order: &[StatusKind]) -> Option<StatusKind> {
    let mut current: Option<StatusKind> = None;
    for next in order {
        if moves_forward(current.as_ref(), next) {
            current = Some(next.clone());
        }
    }
    current
}

#[test]
fn statuses_converge_under_every_order_of_arrival() {
    use StatusKind::{Deleted, Delivered, Failed, Played, Read, Sent};
    let all = [Sent, Delivered, Read, Failed];
    let orders = permutations(&all);
    assert_eq!(orders.len(), 24);
    for order in &orders {
        assert_eq!(apply(order), Some(Failed), "{order:?}");
        // Every non-empty subset, in every order, ends at its highest-ranked member.
        for mask in 1..16_u8 {
            let subset: Vec<StatusKind> = order
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, s)| s.clone())
                .collect();
            let best = subset.iter().max_by_key(|s| s.rank()).cloned();
            assert_eq!(apply(&subset), best, "{subset:?}");
            // Duplicates change nothing.
            let doubled: Vec<StatusKind> = subset.iter().flat_map(|s| [s.clone(), s.clone()]).collect();
            assert_eq!(apply(&doubled), best);
        }
    }
    for order in permutations(&[Sent, Delivered, Read]) {
        assert_eq!(apply(&order), Some(Read), "{order:?}");
    }

    assert!(moves_forward(None, &Sent));
    assert!(moves_forward(Some(&Sent), &Delivered));
    assert!(moves_forward(Some(&Delivered), &Read));
    assert!(moves_forward(Some(&Delivered), &Played));
    assert!(!moves_forward(Some(&Read), &Played), "played ranks with read");
    assert!(!moves_forward(Some(&Played), &Read));
    assert!(!moves_forward(Some(&Read), &Delivered));
    assert!(moves_forward(Some(&Sent), &Failed));
    for next in [Sent, Delivered, Read, Played, Failed, Deleted] {
        assert!(!moves_forward(Some(&Failed), &next), "failed is terminal");
        assert!(!moves_forward(Some(&next), &Deleted), "deleted never moves a message");
    }
    assert!(!moves_forward(None, &Deleted));
    assert!(!moves_forward(Some(&Sent), &StatusKind::Other("captured".into())));
    assert!(Failed.is_terminal());
}
