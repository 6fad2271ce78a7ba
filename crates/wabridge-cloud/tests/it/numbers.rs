//! Phone numbers, throughput, registration, business profile, webhook subscriptions.

use serde_json::json;
use wabridge_cloud::{BUSINESS_PROFILE_FIELDS, CloudError};
use wabridge_types::limits::{Limits, ThroughputLevel};
use wabridge_types::response::{BusinessProfile, SubscribeRequest};
use wabridge_types::{PhoneNumberId, WabaId};

use crate::harness::{
    Example, MockServer, PHONE_ID, WABA_ID, assert_graph_call, assert_json_body, graph_path,
};

#[tokio::test]
async fn phone_numbers_follow_paging() {
    let example = Example::find("Phone Numbers", "Get Phone Numbers");
    let server = MockServer::start().await;
    let mut first = example.response.clone();
    first["paging"] = json!({"cursors": {"after": "P2"}, "next": "https://graph.facebook.com/next"});
    server.reply(200, &first).reply(
        200,
        &json!({"data": [{"id": "3", "display_phone_number": "+1 631-555-5557", "throughput": {"level": "HIGH"}}]}),
    );
    let client = server.client().build().unwrap();
    let numbers = client.phone_numbers(&WabaId::new(WABA_ID)).await.unwrap();
    assert_eq!(numbers.len(), 3);
    assert_eq!(numbers[0].verified_name.as_deref(), Some("Jasper's Market"));
    assert_eq!(numbers[2].throughput.as_ref().unwrap().level, ThroughputLevel::High);

    let reqs = server.requests();
    assert_graph_call(&reqs[0], "GET", &graph_path(&[WABA_ID, "phone_numbers"]));
    example.assert_target(&reqs[0], &[("{{WABA-ID}}", WABA_ID)]);
    assert_eq!(reqs[1].query_value("after"), Some("P2"));
}

#[tokio::test]
async fn phone_number_by_id() {
    let example = Example::find("Phone Numbers", "Get Phone Number By ID");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();
    let number = client.phone_number(&PhoneNumberId::new(PHONE_ID)).await.unwrap();
    assert_eq!(number.quality_rating.as_deref(), Some("GREEN"));
    let req = server.only_request();
    assert_graph_call(&req, "GET", &graph_path(&[PHONE_ID]));
    example.assert_target(&req, &[("{{Phone-Number-ID}}", PHONE_ID)]);
}

#[tokio::test]
async fn throughput_reads_the_level() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"throughput": {"level": "HIGH"}, "id": PHONE_ID}));
    let client = server.client().build().unwrap();
    let answer = client.throughput(&PhoneNumberId::new(PHONE_ID)).await.unwrap();
    assert_eq!(answer.throughput.level, ThroughputLevel::High);
    assert_eq!(Limits::default().mps_for(&answer.throughput.level), 1000);
    let req = server.only_request();
    assert_graph_call(&req, "GET", &graph_path(&[PHONE_ID]));
    assert_eq!(req.query_without_proof(), vec![("fields".to_owned(), "throughput".to_owned())]);
}

#[tokio::test]
async fn register_and_deregister() {
    let register = Example::find("Registration", "Register Phone");
    let deregister = Example::find("Registration", "Deregister Phone");
    let server = MockServer::start().await;
    server.reply(200, &register.response).reply(200, &deregister.response);
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    client.register(&number, "123456").await.unwrap();
    client.deregister(&number).await.unwrap();

    let reqs = server.requests();
    assert_graph_call(&reqs[0], "POST", &graph_path(&[PHONE_ID, "register"]));
    register.assert_target(&reqs[0], &[("{{Phone-Number-ID}}", PHONE_ID)]);
    let mut expected = register.body.clone();
    expected["pin"] = json!("123456");
    assert_json_body(&reqs[0], &expected);
    assert_graph_call(&reqs[1], "POST", &graph_path(&[PHONE_ID, "deregister"]));
    deregister.assert_target(&reqs[1], &[("{{Phone-Number-ID}}", PHONE_ID)]);
    assert!(reqs[1].body.is_empty(), "the reference's deregister has no body");
}

#[tokio::test]
async fn a_bad_pin_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let err = client.register(&PhoneNumberId::new(PHONE_ID), "12ab").await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn business_profile_in_both_documented_shapes() {
    let example = Example::find("Business Profiles", "Get Business Profile");
    let server = MockServer::start().await;
    // Postman's sample wraps the profile in `business_profile`; cloud-api.md §6 has it directly in data[0].
    server.reply(200, &example.response).reply(
        200,
        &json!({"data": [{"about": "Fresh fruit", "messaging_product": "whatsapp", "vertical": "RETAIL",
                          "websites": ["https://example.com"]}]}),
    );
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    let wrapped = client.business_profile(&number).await.unwrap();
    assert_eq!(wrapped.about.as_deref(), Some("profile-about-text"));
    assert_eq!(wrapped.websites.as_ref().unwrap().len(), 2);
    let direct = client.business_profile(&number).await.unwrap();
    assert_eq!(direct.vertical.as_deref(), Some("RETAIL"));

    for req in server.requests() {
        assert_graph_call(&req, "GET", &graph_path(&[PHONE_ID, "whatsapp_business_profile"]));
        assert_eq!(req.query_value("fields"), Some(BUSINESS_PROFILE_FIELDS));
    }
}

#[tokio::test]
async fn update_business_profile_sends_the_reference_body() {
    let example = Example::find("Business Profiles", "Update Business Profile");
    let server = MockServer::start().await;
    server.reply(200, &example.response).reply(200, &json!({"success": true}));
    let client = server.client().build().unwrap();
    let mut body = example.body.clone();
    body["email"] = json!("shop@example.com");
    let profile: BusinessProfile = serde_json::from_value(body.clone()).unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    client.update_business_profile(&number, &profile).await.unwrap();
    client.update_business_profile(&number, &profile).await.unwrap();

    let req = &server.requests()[0];
    assert_graph_call(req, "POST", &graph_path(&[PHONE_ID, "whatsapp_business_profile"]));
    example.assert_target(req, &[("{{Phone-Number-ID}}", PHONE_ID)]);
    assert_json_body(req, &body);
}

#[tokio::test]
async fn an_invalid_profile_is_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let profile = BusinessProfile { about: Some("x".repeat(140)), ..BusinessProfile::default() };
    let err = client.update_business_profile(&PhoneNumberId::new(PHONE_ID), &profile).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn subscribe_list_and_override() {
    let subscribe = Example::find("Webhook Subscriptions", "Subscribe to a WABA");
    let list = Example::find("Webhook Subscriptions", "Get All Subscriptions for a WABA");
    let override_cb = Example::find("Webhook Subscriptions", "Override Callback URL");
    let unsubscribe = Example::find("Webhook Subscriptions", "Unsubscribe from a WABA");
    let server = MockServer::start().await;
    server
        .reply(200, &subscribe.response)
        .reply(200, &list.response)
        .reply(200, &override_cb.response)
        .reply(200, &unsubscribe.response);
    let client = server.client().build().unwrap();
    let waba = WabaId::new(WABA_ID);

    client.subscribe_app(&waba, None).await.unwrap();
    let apps = client.subscribed_apps(&waba).await.unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0].whatsapp_business_api_data.as_ref().unwrap().id.as_deref(), Some("7234002551525653"));
    let request: SubscribeRequest = serde_json::from_value(override_cb.body.clone()).unwrap();
    client.subscribe_app(&waba, Some(&request)).await.unwrap();
    client.unsubscribe_app(&waba).await.unwrap();

    let reqs = server.requests();
    let path = graph_path(&[WABA_ID, "subscribed_apps"]);
    assert_graph_call(&reqs[0], "POST", &path);
    subscribe.assert_target(&reqs[0], &[("{{WABA-ID}}", WABA_ID)]);
    assert!(reqs[0].body.is_empty());
    assert_graph_call(&reqs[1], "GET", &path);
    assert_graph_call(&reqs[2], "POST", &path);
    assert_json_body(&reqs[2], &override_cb.body);
    assert_graph_call(&reqs[3], "DELETE", &path);
}
