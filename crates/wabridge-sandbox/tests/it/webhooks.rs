//! Webhooks: the status lifecycle, signed, in the current shape (and the older one on request), async
//! failures, retries with backoff, batching, the verification handshake, the maximum age.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wabridge_sandbox::{Inbound, SandboxConfig, WebhookShape};
use wabridge_types::send::{OutboundMessage, Template};
use wabridge_types::webhook::{ChangeValue, PricingModel};

use crate::support::{Harness, Receiver, USER, WAIT, eventually};

fn hello(to: &str) -> OutboundMessage {
    OutboundMessage::template(to, Template::new("hello_world", "en_US"))
}

#[tokio::test]
async fn status_lifecycle_in_the_current_shape() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    let sent = h.client.send_message(&h.number(), &hello(USER).with_callback_data("order-17")).await.unwrap();
    let wamid = sent.message_id().unwrap().to_string();
    assert!(
        eventually(WAIT, || receiver.statuses_of(&wamid) == ["sent", "delivered", "read"]).await,
        "{:?}",
        receiver.statuses_of(&wamid)
    );
    assert_eq!(receiver.state.bad_signatures.load(Ordering::SeqCst), 0);
    let statuses: Vec<_> = receiver.statuses().into_iter().filter(|s| s.id.as_str() == wamid).collect();
    for status in &statuses {
        assert_eq!(status.biz_opaque_callback_data.as_deref(), Some("order-17"));
        assert_eq!(status.recipient_id.as_ref().unwrap().as_str(), USER);
        assert!(status.recipient_user_id.as_deref().unwrap().starts_with("US."));
        let pricing = status.pricing.as_ref().unwrap();
        assert_eq!(pricing.pricing_model, Some(PricingModel::Pmp));
        assert_eq!(pricing.category.as_deref(), Some("utility"));
        assert_eq!(pricing.kind.as_deref(), Some("regular"));
        assert!(status.conversation.is_some());
    }
    assert!(statuses[0].conversation.as_ref().unwrap().expiration_timestamp.is_some());
    // Every status webhook names its recipient in `contacts`, with the business-scoped id.
    for change in receiver.changes() {
        let ChangeValue::Messages(value) = change else { continue };
        assert_eq!(value.metadata.phone_number_id, h.number());
        // Webhooks keep the number's digits (Graph objects show it formatted).
        assert_eq!(value.metadata.display_phone_number, "15550783881");
        let contact = &value.contacts()[0];
        assert_eq!(contact.wa_id.as_ref().unwrap().as_str(), USER);
        assert!(contact.user_id.as_deref().unwrap().starts_with("US."));
    }
    // The control API shows the same lifecycle.
    let record = h.sandbox.control().sent_message(&wamid).unwrap();
    assert_eq!(record.status, "read");
    assert_eq!(record.statuses.len(), 3);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn older_shape_on_request() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.shape = WebhookShape::Legacy;
    let (h, receiver) = Harness::with_receiver(config).await;
    let wamid =
        h.client.send_message(&h.number(), &hello(USER)).await.unwrap().message_id().unwrap().to_string();
    assert!(eventually(WAIT, || receiver.statuses_of(&wamid).len() == 3).await);
    for change in receiver.changes() {
        let ChangeValue::Messages(value) = change else { continue };
        assert!(value.contacts.is_none(), "no contacts in older status webhooks");
        for s in value.statuses() {
            assert!(s.recipient_user_id.is_none());
            assert_eq!(s.pricing.as_ref().unwrap().pricing_model, Some(PricingModel::Cbp));
        }
    }
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn window_closed_and_unreachable_fail_asynchronously() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    let text = OutboundMessage::text(USER, "free-form, no window");
    let closed = h.client.send_message(&h.number(), &text).await.unwrap().message_id().unwrap().to_string();
    let unreachable = h
        .client
        .send_message(&h.number(), &hello("15550000000"))
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_string();
    assert!(
        eventually(WAIT, || receiver.statuses_of(&closed) == ["failed"]
            && receiver.statuses_of(&unreachable) == ["failed"])
        .await
    );
    let statuses = receiver.statuses();
    let error = |id: &str| statuses.iter().find(|s| s.id.as_str() == id).unwrap().errors()[0].code;
    assert_eq!(error(&closed), 131_047);
    assert_eq!(error(&unreachable), 131_026);
    // Once the user writes, free-form messages go through (and are free: customer service).
    h.sandbox.control().inject_inbound(Inbound::text(USER, "hi!")).unwrap();
    let open = h.client.send_message(&h.number(), &text).await.unwrap().message_id().unwrap().to_string();
    assert!(eventually(WAIT, || receiver.statuses_of(&open) == ["sent", "delivered", "read"]).await);
    let status = receiver.statuses().into_iter().find(|s| s.id.as_str() == open).unwrap();
    let pricing = status.pricing.unwrap();
    assert_eq!(pricing.kind.as_deref(), Some("free_customer_service"));
    assert_eq!(pricing.billable, Some(false), "PMP: a reply inside the window is free");
    let counters = h.sandbox.control().counters();
    assert_eq!((counters.failed[&131_047], counters.failed[&131_026]), (1, 1));
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_pile_up_into_batches() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.retry_initial = Duration::from_millis(20);
    config.webhooks.retry_max_interval = Duration::from_millis(200);
    let (h, receiver) = Harness::with_receiver(config).await;
    receiver.state.fail_next.store(3, Ordering::SeqCst);
    let mut wamids = Vec::new();
    for i in 0..5 {
        let to = format!("1650555{i:04}");
        wamids.push(
            h.client.send_message(&h.number(), &hello(&to)).await.unwrap().message_id().unwrap().to_string(),
        );
    }
    // An inbound message piles up with the statuses.
    h.sandbox.control().inject_inbound(Inbound::text(USER, "meanwhile")).unwrap();
    let all_read = || wamids.iter().all(|w| receiver.statuses_of(w).contains(&"read".to_owned()));
    assert!(eventually(WAIT, || all_read() && receiver.messages().len() == 1).await);
    // The sandbox counts a delivery once it has the receiver's answer, just after the receiver saw it.
    let control = h.sandbox.control();
    assert!(eventually(WAIT, || control.counters().webhook_events_delivered == 16).await);
    // Batched or not, a `messages` value holds inbound messages or statuses, never both (§3).
    assert_eq!(receiver.state.mixed_values.load(Ordering::SeqCst), 0);
    assert_eq!(control.counters().webhook_posts_failed, 3);
    // While the receiver failed, events piled up and were sent together.
    let largest = receiver
        .envelopes()
        .iter()
        .map(|e| {
            e.entry[0]
                .changes
                .iter()
                .map(|c| c.value.as_messages().map_or(0, |v| v.statuses().len()))
                .sum::<usize>()
        })
        .max()
        .unwrap();
    assert!(largest > 1, "largest batch {largest}");
    assert!(receiver.posts() < 16 + 3);
    h.sandbox.shutdown().await;
}

/// Retries back off exponentially: the wait before each retry is at least twice the one before. Only lower
/// bounds are asserted (a delay is never shorter than its backoff; a loaded machine can only make it longer),
/// and they add up to the doubling: the fourth wait is at least eight times the first delay, which a constant
/// delay would not give.
#[tokio::test]
async fn retries_back_off_exponentially() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.retry_initial = Duration::from_millis(20);
    config.webhooks.retry_max_interval = Duration::from_secs(10);
    let (h, receiver) = Harness::with_receiver(config).await;
    receiver.state.fail_next.store(4, Ordering::SeqCst);
    h.sandbox.control().inject_inbound(Inbound::text(USER, "retry me")).unwrap();
    assert!(eventually(WAIT, || receiver.messages().len() == 1).await);
    let gaps = receiver.gaps();
    assert_eq!(gaps.len(), 4, "{gaps:?}");
    for (i, gap) in gaps.iter().enumerate() {
        let backoff = Duration::from_millis(20 << i);
        assert!(
            *gap >= backoff,
            "retry {} came after {gap:?}, before its backoff of {backoff:?}: {gaps:?}",
            i + 1
        );
    }
    assert_eq!(h.sandbox.control().counters().webhook_posts_failed, 4);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_times_out_gets_the_events_again() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.request_timeout = Duration::from_millis(100);
    config.webhooks.max_in_flight = 1;
    let (h, receiver) = Harness::with_receiver(config).await;
    receiver.state.slow_next.store(1, Ordering::SeqCst);
    h.sandbox.control().inject_inbound(Inbound::text(USER, "are you there?")).unwrap();
    assert!(eventually(WAIT, || receiver.messages().len() == 1).await);
    assert_eq!(h.sandbox.control().counters().webhook_posts_failed, 1);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn events_older_than_the_maximum_age_are_given_up() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.max_age = Duration::from_millis(100);
    config.webhooks.retry_initial = Duration::from_millis(30);
    config.webhooks.retry_max_interval = Duration::from_millis(30);
    let (h, receiver) = Harness::with_receiver(config).await;
    receiver.state.fail_next.store(1_000, Ordering::SeqCst);
    h.client.send_message(&h.number(), &hello(USER)).await.unwrap();
    let control = h.sandbox.control();
    assert!(
        eventually(WAIT, || control.counters().webhook_events_dropped == 3
            && control.pending_webhooks() == 0)
        .await
    );
    assert!(receiver.statuses().is_empty());
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn verification_handshake_is_required_to_add_a_callback() {
    let h = Harness::for_tests().await;
    let config = SandboxConfig::for_tests();
    let wrong = Receiver::start("sandbox-secret", "another-verify-token").await;
    let error = h.sandbox.control().add_callback(&wrong.url).await.unwrap_err();
    assert!(error.to_string().contains("verification"), "{error}");
    assert!(h.sandbox.control().callbacks().is_empty());
    let right = Receiver::start("sandbox-secret", &config.webhooks.verify_token).await;
    h.sandbox.control().add_callback(&right.url).await.unwrap();
    // Through the Graph route too, as Meta does for an override callback.
    let other = Receiver::start("sandbox-secret", "override-token").await;
    let request = wabridge_types::response::SubscribeRequest {
        override_callback_uri: Some(other.url.clone()),
        verify_token: Some("override-token".into()),
    };
    h.client.subscribe_app(&h.waba(), Some(&request)).await.unwrap();
    assert_eq!(h.sandbox.control().callbacks(), [right.url.clone(), other.url.clone()]);
    // Both receive.
    h.sandbox.control().inject_inbound(Inbound::text(USER, "to both")).unwrap();
    assert!(eventually(WAIT, || right.messages().len() == 1 && other.messages().len() == 1).await);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn unsubscribed_apps_get_no_webhooks() {
    let (h, receiver) = Harness::with_receiver(SandboxConfig::for_tests()).await;
    h.client.unsubscribe_app(&h.waba()).await.unwrap();
    h.sandbox.control().inject_inbound(Inbound::text(USER, "anyone?")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(receiver.messages().is_empty());
    h.sandbox.shutdown().await;
}

/// Under conversation-based pricing a user-initiated (service) conversation is billable: Meta's CBP
/// examples ("Status: Message Sent - User Initiated") say `"pricing_model": "CBP", "billable": true`. Only
/// the PMP shape makes a free-form reply inside the window free.
#[tokio::test]
async fn older_shape_bills_service_conversations() {
    let mut config = SandboxConfig::for_tests();
    config.webhooks.shape = WebhookShape::Legacy;
    let (h, receiver) = Harness::with_receiver(config).await;
    h.sandbox.control().inject_inbound(Inbound::text(USER, "hi!")).unwrap();
    let text = OutboundMessage::text(USER, "a reply inside the window");
    let wamid = h.client.send_message(&h.number(), &text).await.unwrap().message_id().unwrap().to_string();
    assert!(
        eventually(WAIT, || receiver.statuses_of(&wamid) == ["sent", "delivered", "read"]).await,
        "{:?}",
        receiver.statuses_of(&wamid)
    );
    let statuses: Vec<_> = receiver.statuses().into_iter().filter(|s| s.id.as_str() == wamid).collect();
    for status in &statuses {
        let pricing = status.pricing.as_ref().unwrap();
        assert_eq!(pricing.pricing_model, Some(PricingModel::Cbp));
        assert_eq!(pricing.billable, Some(true));
        assert_eq!(pricing.category.as_deref(), Some("service"));
    }
    h.sandbox.shutdown().await;
}
