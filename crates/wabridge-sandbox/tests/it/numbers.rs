//! Phone numbers, throughput level, registration, business profile, subscribed apps.

use wabridge_types::limits::ThroughputLevel;
use wabridge_types::response::BusinessProfile;
use wabridge_types::send::OutboundMessage;

use crate::support::{Harness, USER, code};

#[tokio::test]
async fn numbers_and_levels() {
    let h = Harness::for_tests().await;
    let numbers = h.client.phone_numbers(&h.waba()).await.unwrap();
    let ids: Vec<String> = numbers.iter().map(|n| n.id.to_string()).collect();
    assert_eq!(ids, h.sandbox.phone_number_ids());
    // Graph objects show the number formatted, as Meta's example does ("+1 631-555-5555").
    assert_eq!(numbers[0].display_phone_number.as_deref(), Some("+1 555-078-3881"));
    let throughput = h.client.throughput(&h.number()).await.unwrap();
    assert_eq!(throughput.throughput.level, ThroughputLevel::Standard);
    assert_eq!(throughput.id, h.number());
    let number = h.client.phone_number(&h.number()).await.unwrap();
    assert_eq!(number.verified_name.as_deref(), Some("Sandbox Business"));
    assert_eq!(number.display_phone_number.as_deref(), Some("+1 555-078-3881"));
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn deregistered_numbers_cannot_send_until_registered() {
    let h = Harness::for_tests().await;
    let message = OutboundMessage::text(USER, "hi");
    h.client.deregister(&h.number()).await.unwrap();
    assert_eq!(code(h.client.send_message(&h.number(), &message).await).0, 133_010);
    h.client.register(&h.number(), "123456").await.unwrap();
    h.client.send_message(&h.number(), &message).await.unwrap();
    // The PIN is now set: registering with another one is a mismatch.
    assert_eq!(code(h.client.register(&h.number(), "654321").await).0, 133_005);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn business_profile_round_trip() {
    let h = Harness::for_tests().await;
    let update = BusinessProfile {
        about: Some("Fresh bread daily".into()),
        websites: Some(vec!["https://bakery.example".into()]),
        ..BusinessProfile::default()
    };
    h.client.update_business_profile(&h.number(), &update).await.unwrap();
    let profile = h.client.business_profile(&h.number()).await.unwrap();
    assert_eq!(profile.about.as_deref(), Some("Fresh bread daily"));
    assert_eq!(profile.websites, Some(vec!["https://bakery.example".to_owned()]));
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn subscribed_apps() {
    let h = Harness::for_tests().await;
    assert_eq!(h.client.subscribed_apps(&h.waba()).await.unwrap().len(), 1);
    h.client.unsubscribe_app(&h.waba()).await.unwrap();
    assert!(h.client.subscribed_apps(&h.waba()).await.unwrap().is_empty());
    h.client.subscribe_app(&h.waba(), None).await.unwrap();
    assert_eq!(h.client.subscribed_apps(&h.waba()).await.unwrap().len(), 1);
    h.sandbox.shutdown().await;
}
