//! The rest of the On-Premises `/v1` API on both backends: contacts, application settings (persisted,
//! `sent_status` and `webhooks.url` live), business profile and registration through to the Cloud API,
//! and the OpenAPI document built from the route table.

use serde_json::{Value, json};

use crate::support::backend::{TestDb, each_backend};
use crate::support::sending::{Pair, config, sandbox_config};

each_backend!(
    contacts_are_normalized,
    settings_persist_and_apply,
    profile_and_account_reach_the_cloud_api,
    openapi_lists_every_route
);

async fn call(pair: &Pair, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = pair.http.request(method, format!("{}{path}", pair.url)).bearer_auth(&pair.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn contacts_are_normalized(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let body = json!({"blocking": "wait", "contacts": ["+1 631 555 1001", "16315551002", "hello", "+12"],
                      "force_check": true});
    let (code, r) = call(&pair, reqwest::Method::POST, "/v1/contacts", Some(body)).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(
        r["contacts"],
        json!([
            {"input": "+1 631 555 1001", "status": "valid", "wa_id": "16315551001"},
            {"input": "16315551002", "status": "valid", "wa_id": "16315551002"},
            {"input": "hello", "status": "invalid"},
            {"input": "+12", "status": "invalid"},
        ])
    );
    // With a trailing slash, as On-Premises clients (and Meta's example collection) call it.
    let body = json!({"blocking": "wait", "contacts": ["16315551002"]});
    let (code, r) = call(&pair, reqwest::Method::POST, "/v1/contacts/", Some(body)).await;
    assert_eq!((code, r["contacts"][0]["wa_id"].as_str()), (200, Some("16315551002")), "{r}");
    // A known path with a method it does not take: 405 in the On-Premises shape; Graph's shape elsewhere.
    let (code, r) = call(&pair, reqwest::Method::PUT, "/v1/keys", None).await;
    assert_eq!((code, r["errors"][0]["code"].as_u64()), (405, Some(1000)), "{r}");
    let (code, r) = call(&pair, reqwest::Method::PUT, "/webhook", None).await;
    assert_eq!((code, r["error"]["code"].as_u64()), (400, Some(100)), "{r}");
    // Refusals axum makes before a handler runs are in the dialect's shape too: a WebSocket route called
    // without an upgrade, a Cloud media upload that is not a form.
    let (code, r) = call(&pair, reqwest::Method::GET, "/v1/events/ws", None).await;
    assert_eq!((code, r["errors"][0]["code"].as_u64()), (400, Some(1009)), "{r}");
    let path = format!("/v23.0/{}/media", crate::support::sending::NUMBER);
    let (code, r) = call(&pair, reqwest::Method::POST, &path, Some(json!({"not": "a form"}))).await;
    assert_eq!((code, r["error"]["code"].as_u64()), (400, Some(100)), "{r}");
    pair.stop().await;
}

async fn settings_persist_and_apply(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let (code, r) = call(&pair, reqwest::Method::GET, "/v1/settings/application", None).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["sent_status"], true);
    // Inbound media of every kind is fetched, and the defaults say so.
    assert_eq!(
        r["settings"]["application"]["media"]["auto_download"].as_array().map(Vec::len),
        Some(6),
        "{r}"
    );
    // `wa_id` is shown for a gateway of one number (this one serves two); a PATCH carrying it (a document read
    // and sent back) is taken without it.
    assert!(r["settings"]["application"].get("wa_id").is_none(), "{r}");
    let (code, r) =
        call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(json!({"wa_id": "1"}))).await;
    assert_eq!(code, 200, "{r}");
    assert!(r["settings"]["application"].get("wa_id").is_none(), "{r}");
    let patch = json!({"sent_status": false, "callback_backoff_delay_ms": 5000,
                       "webhooks": {"url": "http://127.0.0.1:9/hook", "max_concurrent_requests": 12}});
    let (code, r) = call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(patch)).await;
    assert_eq!(code, 200, "{r}");
    let app = &r["settings"]["application"];
    assert_eq!(app["callback_backoff_delay_ms"], 5000);
    assert!(app["webhooks"]["secret"].is_string());
    // webhooks.url is the `application` callback, in the On-Premises shape.
    let (code, cb) = call(&pair, reqwest::Method::GET, "/v1/callbacks/application", None).await;
    assert_eq!(code, 200, "{cb}");
    assert!(cb.to_string().contains("http://127.0.0.1:9/hook"), "{cb}");
    // The same URL with another concurrency: the callback takes it.
    let more = json!({"webhooks": {"url": "http://127.0.0.1:9/hook", "max_concurrent_requests": 24}});
    assert_eq!(
        call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(more.clone())).await.0,
        200
    );
    let stored = pair.gateway.state().store.callback("application").await.unwrap().unwrap();
    assert_eq!(stored.max_concurrent, 24);
    assert_eq!(stored.kinds, ["message", "status", "payment", "error"], "what the On-Premises API sent");
    // Deleted as a callback, then the same URL set again: the callback is back.
    assert_eq!(call(&pair, reqwest::Method::DELETE, "/v1/callbacks/application", None).await.0, 200);
    assert_eq!(call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(more)).await.0, 200);
    assert_eq!(call(&pair, reqwest::Method::GET, "/v1/callbacks/application", None).await.0, 200);
    let back = json!({"webhooks": {"url": "http://127.0.0.1:9/hook", "max_concurrent_requests": 12}});
    assert_eq!(call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(back)).await.0, 200);
    // The example body of Meta's On-Premises collection, as it is (with a URL of ours).
    let example = json!({"callback_backoff_delay_ms": 3000, "max_callback_backoff_delay_ms": 900_000,
        "callback_persist": true, "media": {"auto_download": ["image", "document", "audio"]},
        "webhooks": {"url": "http://127.0.0.1:9/hook", "max_concurrent_requests": 12},
        "sent_status": false, "db_garbagecollector_enable": true});
    let (code, r) = call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(example)).await;
    assert_eq!(code, 200, "{r}");
    // Out of range or unknown: 1009, nothing changes.
    for bad in [
        json!({"callback_backoff_delay_ms": 1}),
        json!({"no_such_setting": true}),
        json!({"webhooks": {"url": "ftp://x"}}),
    ] {
        let (code, r) = call(&pair, reqwest::Method::PATCH, "/v1/settings/application", Some(bad)).await;
        assert_eq!((code, r["errors"][0]["code"].as_u64()), (400, Some(1009)), "{r}");
    }
    // Persisted: a new gateway on the same database reads them back.
    pair.stop().await;
    let mut c = config(&db);
    // The first gateway's lease on the number lapses quickly.
    c.outbound.lease_ms = 300;
    let pair = Pair::start(c, sandbox_config(|_| {})).await;
    let (_, r) = call(&pair, reqwest::Method::GET, "/v1/settings/application", None).await;
    assert_eq!(r["settings"]["application"]["sent_status"], false, "{r}");
    assert_eq!(r["settings"]["application"]["webhooks"]["max_concurrent_requests"], 12);
    // sent_status off: a message's `sent` status reaches no application (delivered/read do).
    let (code, sent) =
        pair.send(&crate::support::sending::template(crate::support::sending::NUMBER, "+16315551234")).await;
    assert_eq!(code, 201, "{sent}");
    let id = sent["messages"][0]["id"].as_str().unwrap();
    pair.wait_state(id, &["read"], std::time::Duration::from_secs(30)).await;
    let (_, events) = call(&pair, reqwest::Method::GET, "/v1/events?kinds=status", None).await;
    let text = events.to_string();
    assert!(text.contains("\\\"read\\\"") || text.contains("\"read\""), "{text}");
    assert!(!text.contains("\\\"sent\\\"") && !text.contains("\"status\":\"sent\""), "{text}");
    let (code, r) = call(&pair, reqwest::Method::DELETE, "/v1/settings/application", None).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["application"]["sent_status"], true);
    let (code, _) = call(&pair, reqwest::Method::GET, "/v1/callbacks/application", None).await;
    assert_eq!(code, 404);
    pair.stop().await;
}

async fn profile_and_account_reach_the_cloud_api(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let path = format!("/v1/settings/business/profile?phone_number_id={}", crate::support::sending::NUMBER);
    let update = json!({"about": "Open 9-5", "address": "1 Main St", "email": "shop@example.com",
                        "websites": ["https://example.com"], "vertical": "RETAIL"});
    let (code, r) = call(&pair, reqwest::Method::POST, &path, Some(update)).await;
    assert_eq!(code, 200, "{r}");
    let (code, r) = call(&pair, reqwest::Method::GET, &path, None).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["settings"]["business"]["profile"]["address"], "1 Main St", "{r}");
    // The On-Premises `about` node: the profile's `about`, in its own shape.
    let about = format!("/v1/settings/profile/about?phone_number_id={}", crate::support::sending::NUMBER);
    let (code, r) =
        call(&pair, reqwest::Method::PATCH, &about, Some(json!({"text": "Closed on Sundays"}))).await;
    assert_eq!(code, 200, "{r}");
    let (code, r) = call(&pair, reqwest::Method::GET, &about, None).await;
    assert_eq!((code, &r["settings"]["profile"]["about"]["text"]), (200, &json!("Closed on Sundays")), "{r}");
    let (code, r) = call(&pair, reqwest::Method::GET, &path, None).await;
    assert_eq!((code, &r["settings"]["business"]["profile"]["address"]), (200, &json!("1 Main St")), "{r}");
    let long = json!({"text": "x".repeat(140)});
    assert_eq!(call(&pair, reqwest::Method::PATCH, &about, Some(long)).await.0, 400);
    // Several numbers are configured: the number must be named.
    let (code, r) = call(&pair, reqwest::Method::GET, "/v1/settings/business/profile", None).await;
    assert_eq!((code, r["errors"][0]["code"].as_u64()), (400, Some(1008)), "{r}");
    // Registration: the configured number by its display number, with the two-step PIN.
    let account =
        json!({"cc": "1", "phone_number": "5550783881", "method": "sms", "cert": "x", "pin": "123456"});
    let (code, r) = call(&pair, reqwest::Method::POST, "/v1/account", Some(account)).await;
    assert_eq!(code, 201, "{r}");
    let no_pin = json!({"cc": "1", "phone_number": "5550783881", "method": "sms", "cert": "x"});
    let (code, r) = call(&pair, reqwest::Method::POST, "/v1/account", Some(no_pin)).await;
    assert_eq!((code, r["errors"][0]["code"].as_u64()), (400, Some(1008)), "{r}");
    let unknown = json!({"cc": "44", "phone_number": "7700900000", "pin": "123456"});
    assert_eq!(call(&pair, reqwest::Method::POST, "/v1/account", Some(unknown)).await.0, 404);
    // A read receipt of a received message (On-Premises `PUT /v1/messages/{id}`).
    let wamid = pair
        .sandbox
        .control()
        .inject_inbound(wabridge_sandbox::Inbound::text("16315551234", "hello"))
        .unwrap();
    let receipt = json!({"status": "read", "from": crate::support::sending::NUMBER});
    let (code, r) = call(&pair, reqwest::Method::PUT, &format!("/v1/messages/{wamid}"), Some(receipt)).await;
    assert_eq!(code, 200, "{r}");
    pair.stop().await;
}

async fn openapi_lists_every_route(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    // A path under /v1 that is no route: an On-Premises 404, not a Graph error.
    for path in ["/v1/x", "/v1/messages/a/b/c"] {
        let (code, r) = call(&pair, reqwest::Method::GET, path, None).await;
        assert_eq!(code, 404, "{path}: {r}");
        assert!(r["errors"][0]["title"].is_string() && r["error"].is_null(), "{path}: {r}");
    }
    let doc: Value =
        pair.http.get(format!("{}/v1/openapi.json", pair.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let specs = wabridge_gateway::api::registry::specs();
    assert!(specs.len() >= 20);
    for spec in &specs {
        let op = &doc["paths"][spec.path][spec.verb.as_str()];
        assert!(op.is_object(), "{} {} is not in the document", spec.verb.as_str(), spec.path);
        // And the gateway serves it: an unrouted path answers 404/405 with an empty body, a routed one
        // answers from its handler (JSON, or a WebSocket refusal).
        let path = spec.path.replace("{id}", "nope");
        let method = reqwest::Method::from_bytes(spec.verb.as_str().to_uppercase().as_bytes()).unwrap();
        let resp = pair.http.request(method, format!("{}{path}", pair.url)).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        // (An unrouted `/v1/x` would reach the Cloud-compatible `/{version}/{node}` routes: a Graph error.)
        let graph_error = serde_json::from_str::<Value>(&body).is_ok_and(|v| v.get("error").is_some());
        assert!(
            status != 405 && !(status == 404 && body.is_empty()) && !graph_error,
            "{} {path} is not served: {status} {body}",
            spec.verb.as_str()
        );
        // Each handler checks the credential itself (the table's `access` describes it): a route that is
        // not public refuses a request without one, before anything else.
        if spec.access != wabridge_gateway::api::registry::Access::Public {
            assert_eq!(status, 401, "{} {path} answers without a credential: {body}", spec.verb.as_str());
        }
    }
    let documented: usize =
        doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, specs.len(), "the document has exactly the routes of the table");
    pair.stop().await;
}
