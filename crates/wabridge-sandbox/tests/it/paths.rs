//! Graph paths: one trailing slash is tolerated, and any path or method no route serves is answered in
//! Graph's error envelope (through the same token check and counting as every Graph call).

use serde_json::{Value, json};

use crate::support::{Harness, code};

async fn call(h: &Harness, method: reqwest::Method, url: &str, token: bool) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if token {
        request = request.bearer_auth(h.sandbox.access_token());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Meta's "Delete Media" example: `DELETE {{Version}}/{{Media-ID}}/?phone_number_id=…`, trailing slash
/// included, answered `{"success": true}`.
#[tokio::test]
async fn delete_media_with_a_trailing_slash_as_in_metas_example() {
    let h = Harness::for_tests().await;
    let id =
        h.client.upload_media(&h.number(), b"%PDF-1.4".to_vec(), "application/pdf", "a.pdf").await.unwrap();
    let url = h.url(&format!("{}/?phone_number_id={}", id.as_str(), h.number().as_str()));
    let (status, body) = call(&h, reqwest::Method::DELETE, &url, true).await;
    assert_eq!((status, &body), (200, &json!({"success": true})));
    // It is really gone.
    assert_eq!(code(h.client.media_info(&id).await).0, 100);
    // An edge with a trailing slash is routed too.
    let (status, body) =
        call(&h, reqwest::Method::GET, &h.url(&format!("{}/phone_numbers/", h.waba().as_str())), true).await;
    assert_eq!(status, 200, "{body}");
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_graph_errors() {
    let h = Harness::for_tests().await;
    let (status, body) = call(&h, reqwest::Method::GET, &h.url("a/b/c"), true).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert_eq!(body["error"]["error_data"]["details"], "Unknown path components: /c", "{body}");
    assert!(body["error"]["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    // No node at all.
    let (status, body) =
        call(&h, reqwest::Method::GET, &format!("{}/v23.0", h.sandbox.base_url()), true).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)), "{body}");
    // A method Graph has no operation for on a known path: code 100 in the envelope, not a bare 405.
    let number_url = h.url(h.number().as_str());
    let (status, body) = call(&h, reqwest::Method::PATCH, &number_url, true).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)), "{body}");
    let details = body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.starts_with("Unsupported patch request"), "{body}");
    // The token is checked first, as on every Graph call.
    let (status, body) = call(&h, reqwest::Method::GET, &h.url("a/b/c"), false).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (401, Some(190)), "{body}");
    let counters = h.sandbox.control().counters();
    assert_eq!(counters.rejected.get(&100), Some(&3), "{counters:?}");
    assert_eq!(counters.rejected.get(&190), Some(&1), "{counters:?}");
    // The control API keeps its own answer for a path it does not have (one that cannot be read as
    // `/{version}/{node}/{edge}` either).
    let (status, body) =
        call(&h, reqwest::Method::GET, &format!("{}/_sandbox/no/such/route", h.sandbox.base_url()), false)
            .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["code"].is_null(), "{body}");
    h.sandbox.shutdown().await;
}
