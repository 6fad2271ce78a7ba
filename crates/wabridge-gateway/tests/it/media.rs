//! Media on both backends: `/v1/media` upload, download and delete; inbound media fetched, checked and
//! cached as its webhook arrives; the Cloud-compatible media routes driven by the SDK.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use wabridge_cloud::{Client, RetryPolicy};
use wabridge_gateway::media::DeletionCursor;
use wabridge_sandbox::Inbound;
use wabridge_types::ids::{MediaId, PhoneNumberId};

use crate::support::backend::{TestDb, each_backend};
use crate::support::raw_http::{self, Framing};
use crate::support::sending::{NUMBER, Pair, config, sandbox_config};

each_backend!(
    v1_media_round_trip,
    inbound_media_is_cached,
    cloud_media_routes_through_the_sdk,
    cloud_media_url_uses_the_public_url,
    a_download_that_cannot_be_cached_is_still_answered,
    deleting_media_meta_no_longer_has_removes_the_cached_copy,
    an_upload_refused_with_code_100_is_not_a_missing_resource,
    uploads_leave_no_spool_file,
    a_client_that_disconnects_mid_upload_leaves_no_spool_file,
    a_large_upload_goes_through,
    media_deleted_elsewhere_is_swept_from_the_cache,
    a_delete_meta_refuses_takes_its_note_back,
    cloud_routes_take_a_trailing_slash_and_a_read_receipt_by_put,
    an_upload_for_a_number_not_configured_is_refused_before_its_body_is_read
);

#[tokio::test]
async fn media_deleted_through_another_instance_is_not_served_by_this_one() {
    crate::support::backend::run(
        crate::support::backend::Backend::Postgres,
        deleted_through_another_instance,
    )
    .await;
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes all the same";

async fn v1_media_round_trip(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let resp =
        pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG).send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let id = body["media"][0]["id"].as_str().unwrap().to_owned();
    let get =
        pair.http.get(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "image/jpeg");
    assert_eq!(get.bytes().await.unwrap().as_ref(), JPEG);
    let del =
        pair.http.delete(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert_eq!(del.status(), 200);
    let gone =
        pair.http.get(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    // No Content-Type: 1008.
    let bad = pair.http.post(&url).bearer_auth(&pair.key).body(JPEG).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    // A query that does not parse (the number twice): 400 in the On-Premises shape.
    let twice = format!("{url}&phone_number_id={NUMBER}");
    let bad = pair.http.post(twice).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG);
    let bad = bad.send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["errors"][0]["code"].is_number());
    // A type Meta does not take: refused before any call, as the caller's error (not an upstream failure).
    let odd =
        pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "application/x-foo").body(JPEG);
    let odd = odd.send().await.unwrap();
    assert_eq!(odd.status(), 400);
    assert_eq!(odd.json::<Value>().await.unwrap()["errors"][0]["code"], 1009);
    // Many applications asking for the same media at once, before it is cached: each gets all of it.
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG);
    let body: Value = resp.send().await.unwrap().json().await.unwrap();
    let id = body["media"][0]["id"].as_str().unwrap().to_owned();
    let gets = (0..8).map(|_| {
        let get = pair.http.get(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send();
        async move {
            let get = get.await.unwrap();
            (get.status().as_u16(), get.bytes().await.unwrap())
        }
    });
    for (status, bytes) in futures_util::future::join_all(gets).await {
        assert_eq!((status, bytes.as_ref()), (200, JPEG));
    }
    // Larger than a webhook may be (3 MB), within Meta's 5 MB for images: taken.
    let mut big = JPEG.to_vec();
    big.resize(4 * 1024 * 1024, 0);
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(big);
    assert_eq!(resp.send().await.unwrap().status(), 201);
    // A JSON route takes `http.max_json_body_bytes` (1 MiB), not the media limit: 413 in the /v1 shape.
    let text = "a".repeat(2 * 1024 * 1024);
    let big_json = json!({"to": "16315551234", "type": "text", "text": {"body": text}}).to_string();
    let resp = pair.http.post(format!("{}/v1/messages", pair.url)).bearer_auth(&pair.key);
    // (The server closes a connection whose body it refused unread: the client must not reuse it.)
    let resp = resp.header("content-type", "application/json").header("connection", "close");
    let resp = resp.body(big_json).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert!(resp.json::<Value>().await.unwrap()["errors"][0]["code"].is_number());

    // Not a media id (Meta's are numbers): refused without a call to Meta, which would delete whatever
    // object the id names.
    let del =
        pair.http.delete(format!("{}/v1/media/abc-1", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert_eq!(del.status(), 404);
    // Nor another Graph object whose id is a number too (a phone number here): it is not media, so it is not
    // deleted.
    let del = pair
        .http
        .delete(format!("{}/v1/media/{NUMBER}", pair.url))
        .bearer_auth(&pair.key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    pair.stop().await;
}

async fn inbound_media_is_cached(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let data = base64::engine::general_purpose::STANDARD.encode(JPEG);
    let inbound = Inbound::of_type("16315551234", "image", json!({"data": data, "mime_type": "image/jpeg"}));
    pair.sandbox.control().inject_inbound(inbound).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let events: Value = pair.get_json("/v1/events?kinds=message").await;
        if let Some(id) = events.pointer("/events/0/payload/messages/0/image/id").and_then(Value::as_str) {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no inbound image event: {events}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let media = pair.gateway.state().media.clone();
    while !media.is_cached(&id) {
        assert!(Instant::now() < deadline, "inbound media was not fetched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let get =
        pair.http.get(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), JPEG);
    pair.stop().await;
}

async fn cloud_media_routes_through_the_sdk(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let client = gateway_sdk(&pair);
    let id =
        client.upload_media(&PhoneNumberId::new(NUMBER), JPEG.to_vec(), "image/jpeg", "a.jpg").await.unwrap();
    let info = client.media_info(&id).await.unwrap();
    assert!(info.url.starts_with(&pair.url), "{}", info.url);
    assert_eq!(client.download_media(&info.url).await.unwrap().as_ref(), JPEG);
    client.delete_media(&id).await.unwrap();
    let e = client.media_info(&MediaId::new(id.as_str())).await.unwrap_err();
    assert!(e.code().is_some(), "{e}");
    // Only media ids are looked up at Meta through these routes, not other Graph objects.
    let e = client.media_info(&MediaId::new("WABA-1")).await.unwrap_err();
    assert_eq!(e.code(), Some(100), "{e}");
    // An upload of a type Meta does not take, sent raw to the Cloud-compatible route (the SDK itself would
    // refuse it): a Graph error 131053 with HTTP 400, not "retry later".
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "application/x-foo")
        .part(
            "file",
            reqwest::multipart::Part::bytes(JPEG.to_vec())
                .file_name("a.foo")
                .mime_str("application/x-foo")
                .unwrap(),
        );
    let resp = pair
        .http
        .post(format!("{}/v23.0/{NUMBER}/media", pair.url))
        .bearer_auth(&pair.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], 131_053);
    pair.stop().await;
}

/// Graph takes one trailing slash on a path (Meta's "Delete Media" example has one) and a read receipt by
/// `PUT …/messages` (its "Mark Message As Read" example); so do the Cloud-compatible routes.
async fn cloud_routes_take_a_trailing_slash_and_a_read_receipt_by_put(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = pair.http.request(method, format!("{}{path}", pair.url)).bearer_auth(&pair.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let id = upload(&pair).await;
    let (code, info) = call(reqwest::Method::GET, format!("/v23.0/{id}/"), None).await;
    assert_eq!((code, info["id"].as_str()), (200, Some(id.as_str())), "{info}");
    let (code, gone) =
        call(reqwest::Method::DELETE, format!("/v23.0/{id}/?phone_number_id={NUMBER}"), None).await;
    assert_eq!((code, &gone), (200, &json!({"success": true})));

    let template = json!({"messaging_product": "whatsapp", "to": "16315550803", "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (code, sent) =
        call(reqwest::Method::POST, format!("/v23.0/{NUMBER}/messages/"), Some(template.clone())).await;
    assert_eq!(code, 200, "{sent}");
    assert!(sent["messages"][0]["id"].as_str().is_some_and(|w| w.starts_with("wamid.")), "{sent}");

    let inbound = pair.sandbox.control().inject_inbound(Inbound::text("16315550803", "hello")).unwrap();
    let receipt = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound});
    let (code, read) = call(reqwest::Method::PUT, format!("/v23.0/{NUMBER}/messages"), Some(receipt)).await;
    assert_eq!((code, &read), (200, &json!({"success": true})));
    // Anything but a read receipt by PUT is refused, as Graph refuses it, and nothing is sent.
    let before = pair.sandbox.control().counters().accepted;
    let (code, refused) =
        call(reqwest::Method::PUT, format!("/v23.0/{NUMBER}/messages"), Some(template)).await;
    assert_eq!((code, &refused["error"]["code"]), (400, &json!(100)), "{refused}");
    assert_eq!(pair.sandbox.control().counters().accepted, before);
    // An unknown `/v1` path still answers in the On-Premises shape, with or without the slash.
    for path in ["/v1/nothing-here", "/v1/nothing-here/"] {
        let (code, body) = call(reqwest::Method::GET, path.to_owned(), None).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body["errors"].is_array(), "{path}: {body}");
    }
    pair.stop().await;
}

/// Behind a proxy that terminates HTTPS, the media URL given to clients is the configured public URL, not the
/// address the proxy called.
async fn cloud_media_url_uses_the_public_url(db: TestDb) {
    let mut cfg = config(&db);
    cfg.public_url = Some("https://wa.example.com/".to_owned());
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG);
    let body: Value = resp.send().await.unwrap().json().await.unwrap();
    let id = body["media"][0]["id"].as_str().unwrap().to_owned();
    let info = pair.get_json(&format!("/v23.0/{id}")).await;
    assert_eq!(info["url"], format!("https://wa.example.com/v23.0/{id}/download"), "{info}");
    pair.stop().await;
}

/// `POST /v1/media` → the id.
async fn upload(pair: &Pair) -> String {
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG);
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["media"][0]["id"].as_str().unwrap().to_owned()
}

/// `GET /v1/media/{id}` → status, Content-Type, Content-Length and bytes.
async fn download(pair: &Pair, id: &str) -> (u16, Option<String>, Option<String>, bytes::Bytes) {
    let resp =
        pair.http.get(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (kind, len) = (header("content-type"), header("content-length"));
    (resp.status().as_u16(), kind, len, resp.bytes().await.unwrap())
}

/// A download that cannot be written to the cache (here its directory is a file; a full disk alike) is
/// still answered: the cache is an optimisation, not a condition.
async fn a_download_that_cannot_be_cached_is_still_answered(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let dir = pair.gateway.state().config.data_dir.join("media");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let id = upload(&pair).await;
    let (status, kind, _, bytes) = download(&pair, &id).await;
    assert_eq!((status, kind.as_deref(), bytes.as_ref()), (200, Some("image/jpeg"), JPEG));
    assert!(!pair.gateway.state().media.is_cached(&id));
    pair.stop().await;
}

/// Media that Meta no longer has (expired, or deleted elsewhere) but the cache still holds: `DELETE` removes
/// the cached copy (and succeeds), so it is not served any more.
async fn deleting_media_meta_no_longer_has_removes_the_cached_copy(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let id = upload(&pair).await;
    // Fetched and cached by the first download; the second is served from the cache file, with its length.
    assert_eq!(download(&pair, &id).await.0, 200);
    assert!(pair.gateway.state().media.is_cached(&id));
    let (status, kind, len, bytes) = download(&pair, &id).await;
    assert_eq!((status, kind.as_deref(), bytes.as_ref()), (200, Some("image/jpeg"), JPEG));
    assert_eq!(len, Some(JPEG.len().to_string()));
    // Gone at Meta.
    let meta = Client::builder()
        .base_url(pair.sandbox.base_url())
        .access_token(pair.sandbox.access_token().to_owned())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap();
    meta.delete_media(&MediaId::new(id.as_str())).await.unwrap();
    assert_eq!(download(&pair, &id).await.0, 200, "still cached");
    let delete = |id: String| {
        let request = pair.http.delete(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(id.clone()).await, 200);
    assert!(!pair.gateway.state().media.is_cached(&id));
    assert_eq!(download(&pair, &id).await.0, 404);
    // Nothing left to delete, here or at Meta: 404.
    assert_eq!(delete(id).await, 404);
    pair.stop().await;
}

/// Meta refusing an upload with code 100 (a parameter) is the request's error (Meta's 400), not 404 "no
/// such media", which only a download or delete can mean.
async fn an_upload_refused_with_code_100_is_not_a_missing_resource(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    pair.sandbox.control().set_fault(Some(wabridge_sandbox::FaultInjection {
        code: 100,
        next_n: None,
        every_nth: None,
        scope: wabridge_sandbox::FaultScope::All,
    }));
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "image/jpeg").body(JPEG);
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], 1000, "{body}");
    pair.sandbox.control().set_fault(None);
    pair.stop().await;
}

/// The spool files (uploads being received or sent) the gateway of `pair` has.
fn spool_files(pair: &Pair) -> Vec<String> {
    wabridge_gateway::media::spool::files_in(pair.gateway.state().media.spool_dir())
}

/// The gateway's address, for requests written by hand.
fn addr(pair: &Pair) -> std::net::SocketAddr {
    pair.url.trim_start_matches("http://").parse().unwrap()
}

/// A multipart form as the Cloud API takes it: `messaging_product`, `type` (when given), then `file`.
fn cloud_form(kind: Option<&str>, file: Vec<u8>, file_type: &str) -> reqwest::multipart::Form {
    let form = reqwest::multipart::Form::new().text("messaging_product", "whatsapp");
    let form = match kind {
        Some(kind) => form.text("type", kind.to_owned()),
        None => form,
    };
    let part = reqwest::multipart::Part::bytes(file).file_name("f").mime_str(file_type).unwrap();
    form.part("file", part)
}

/// Every upload leaves no spool file behind once it is answered, whatever the answer: taken, refused for its
/// type or size (the type's or the route's), empty, refused by Meta; on both routes. Spool files a previous
/// run left are removed at start.
async fn uploads_leave_no_spool_file(db: TestDb) {
    let cfg = config(&db);
    let spool_dir = cfg.data_dir.join("tmp");
    std::fs::create_dir_all(&spool_dir).unwrap();
    std::fs::write(spool_dir.join("upload-left-by-a-crash.part"), JPEG).unwrap();
    let pair = Pair::start(cfg, sandbox_config(|_| {})).await;
    assert_eq!(pair.gateway.state().media.spool_dir(), spool_dir.as_path());
    assert_eq!(spool_files(&pair), Vec::<String>::new(), "a previous run's spool file was not swept");
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let post = |kind: &str, body: Vec<u8>| {
        let request = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", kind).body(body);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };

    // Taken.
    let (status, body) = post("image/jpeg", JPEG.to_vec()).await;
    assert_eq!(status, 201, "{body}");
    assert!(spool_files(&pair).is_empty(), "after a success: {:?}", spool_files(&pair));
    // A type Meta does not take: 400 / 1009, as before.
    let (status, body) = post("application/x-foo", JPEG.to_vec()).await;
    assert_eq!((status, &body["errors"][0]["code"]), (400, &json!(1009)), "{body}");
    assert!(spool_files(&pair).is_empty(), "after a refused type: {:?}", spool_files(&pair));
    // Larger than its type allows (images: 5 MB): 400 / 1009 with the SDK's words, as before.
    let (status, body) = post("image/jpeg", vec![0xff; 5 * 1024 * 1024 + 1]).await;
    assert_eq!((status, &body["errors"][0]["code"]), (400, &json!(1009)), "{body}");
    let details = body["errors"][0]["details"].as_str().unwrap();
    assert!(details.contains("5242881 bytes"), "{body}");
    assert!(spool_files(&pair).is_empty(), "after a refused size: {:?}", spool_files(&pair));
    // Empty: 400 / 1008.
    let (status, body) = post("image/jpeg", Vec::new()).await;
    assert_eq!((status, &body["errors"][0]["code"]), (400, &json!(1008)), "{body}");
    // Meta refusing it.
    pair.sandbox.control().set_fault(Some(wabridge_sandbox::FaultInjection {
        code: 131_053,
        next_n: Some(1),
        every_nth: None,
        scope: wabridge_sandbox::FaultScope::All,
    }));
    let (status, _) = post("image/jpeg", JPEG.to_vec()).await;
    assert_eq!(status, 400);
    assert!(spool_files(&pair).is_empty(), "after Meta refused: {:?}", spool_files(&pair));
    // Larger than any upload may be, without a length (counted as it arrives) and with one (refused before
    // it is read): 413 / 1009.
    let headers =
        [("authorization", format!("Bearer {}", pair.key)), ("content-type", "image/jpeg".to_owned())];
    let path = format!("/v1/media?phone_number_id={NUMBER}");
    let over = vec![0u8; wabridge_gateway::MEDIA_BODY_LIMIT + 1];
    for framing in [Framing::Chunked, Framing::Length] {
        let status = raw_http::post(addr(&pair), &path, &headers, over.clone(), framing).await;
        assert_eq!(status, Some(413), "{framing:?}");
        assert!(spool_files(&pair).is_empty(), "after 413 ({framing:?}): {:?}", spool_files(&pair));
    }

    // The Cloud-compatible route: taken, a type Meta does not take (131053), no type at all (100).
    let cloud = format!("{}/v23.0/{NUMBER}/media", pair.url);
    let send = |form: reqwest::multipart::Form| {
        let request = pair.http.post(&cloud).bearer_auth(&pair.key).multipart(form);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send(cloud_form(Some("image/jpeg"), JPEG.to_vec(), "image/jpeg")).await;
    assert!(status == 200 && body["id"].is_string(), "{status} {body}");
    let (status, body) =
        send(cloud_form(Some("application/x-foo"), JPEG.to_vec(), "application/x-foo")).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(131_053)), "{body}");
    let (status, body) =
        send(cloud_form(Some("image/jpeg"), vec![0xff; 5 * 1024 * 1024 + 1], "image/jpeg")).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(131_053)), "{body}");
    let no_type = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .part("file", reqwest::multipart::Part::bytes(JPEG.to_vec()).file_name("f"));
    let (status, body) = send(no_type).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(100)), "{body}");
    // The type after the file, from the file's own Content-Type: taken.
    let late_type = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .part(
            "file",
            reqwest::multipart::Part::bytes(JPEG.to_vec()).file_name("f").mime_str("image/jpeg").unwrap(),
        )
        .text("type", "image/jpeg");
    let (status, body) = send(late_type).await;
    assert!(status == 200 && body["id"].is_string(), "{status} {body}");
    assert!(spool_files(&pair).is_empty(), "after the Cloud-compatible uploads: {:?}", spool_files(&pair));
    pair.stop().await;
}

/// Waits until `done`, polling; the bound only keeps a broken gateway from hanging the run.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An upload naming a number this gateway does not have is answered before its body is read (not after
/// spooling up to 100 MiB of it to disk).
async fn an_upload_for_a_number_not_configured_is_refused_before_its_body_is_read(db: TestDb) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let mut stream = tokio::net::TcpStream::connect(addr(&pair)).await.unwrap();
    let head = format!(
        "POST /v1/media?phone_number_id=999 HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/pdf\r\ncontent-length: {}\r\n\r\n",
        addr(&pair),
        pair.key,
        50 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'%'; 4096]).await.unwrap();
    stream.flush().await.unwrap();
    // The rest of the body never comes: only an answer given before reading it arrives.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while !answer.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            answer.push(byte[0]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was still coming");
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(spool_files(&pair).is_empty());
    pair.stop().await;
}

/// A client that goes away in the middle of its upload's body, on either route: the upload's spool file
/// (which had some of the body) is removed.
async fn a_client_that_disconnects_mid_upload_leaves_no_spool_file(db: TestDb) {
    use tokio::io::AsyncWriteExt as _;
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let auth = format!("Bearer {}", pair.key);
    let boundary = "wabridge-test-boundary";
    let form_head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"type\"\r\n\r\napplication/pdf\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
         content-type: application/pdf\r\n\r\n"
    );
    let routes = [
        (format!("/v1/media?phone_number_id={NUMBER}"), "application/pdf".to_owned(), Vec::new()),
        (
            format!("/v23.0/{NUMBER}/media"),
            format!("multipart/form-data; boundary={boundary}"),
            form_head.into_bytes(),
        ),
    ];
    for (path, content_type, prefix) in routes {
        let mut stream = tokio::net::TcpStream::connect(addr(&pair)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {auth}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\n\r\n",
            addr(&pair),
            10 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&prefix).await.unwrap();
        stream.write_all(&vec![b'%'; 1024 * 1024]).await.unwrap();
        stream.flush().await.unwrap();
        // Some of the body is on disk.
        let dir = pair.gateway.state().media.spool_dir().to_owned();
        until("part of the body written to a spool file", || {
            spool_files(&pair).iter().any(|name| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0))
        })
        .await;
        drop(stream);
        until("the spool file removed", || spool_files(&pair).is_empty()).await;
    }
    // The gateway goes on taking uploads.
    upload(&pair).await;
    assert!(spool_files(&pair).is_empty());
    pair.stop().await;
}

/// A 20 MiB document goes through both routes (the Cloud-compatible one from the SDK's streamed upload) and
/// comes back whole.
async fn a_large_upload_goes_through(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let content: Vec<u8> = (0..20 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let url = format!("{}/v1/media?phone_number_id={NUMBER}", pair.url);
    let resp = pair.http.post(&url).bearer_auth(&pair.key).header("content-type", "application/pdf");
    let resp = resp.body(content.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let id = body["media"][0]["id"].as_str().unwrap().to_owned();
    let (status, kind, len, bytes) = download(&pair, &id).await;
    assert_eq!(
        (status, kind.as_deref(), len),
        (200, Some("application/pdf"), Some(content.len().to_string()))
    );
    assert!(bytes.as_ref() == content.as_slice(), "the downloaded document is not the uploaded one");

    let path = pair.gateway.state().config.data_dir.join("large-upload.pdf");
    std::fs::write(&path, &content).unwrap();
    let client = gateway_sdk(&pair);
    let number = PhoneNumberId::new(NUMBER);
    let id = client
        .upload_media_file(&number, &path, content.len() as u64, "application/pdf", "large.pdf")
        .await
        .unwrap();
    let info = client.media_info(&id).await.unwrap();
    assert_eq!(info.file_size.bytes, content.len() as u64);
    let bytes = client.download_media(&info.url).await.unwrap();
    assert!(bytes.as_ref() == content.as_slice(), "the downloaded document is not the uploaded one");
    std::fs::remove_file(&path).unwrap();
    assert!(spool_files(&pair).is_empty(), "{:?}", spool_files(&pair));
    pair.stop().await;
}

/// Two instances on one PostgreSQL database, each with a cache of its own: media deleted through one is no
/// longer served by the other, whose cached copy goes at its next download (and at its next sweep).
async fn deleted_through_another_instance(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let mut other_config = (*pair.gateway.state().config).clone();
    let TestDb::Postgres { schema, .. } = &db else {
        unreachable!("two instances share a PostgreSQL database")
    };
    let other_dir = std::env::temp_dir().join(format!("{schema}-other"));
    other_config.data_dir.clone_from(&other_dir);
    let other = crate::support::gateway::start(other_config).await;
    let get = |base: String, id: String| {
        let request = pair.http.get(format!("{base}/v1/media/{id}")).bearer_auth(&pair.key);
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap())
        }
    };
    let (first, second) = (upload(&pair).await, upload(&pair).await);
    for id in [&first, &second] {
        assert_eq!(get(other.url(), id.clone()).await, (200, bytes::Bytes::from_static(JPEG)));
        assert!(other.state().media.is_cached(id), "the other instance caches what it served");
    }
    let delete =
        |id: &str| pair.http.delete(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send();
    assert_eq!(delete(&first).await.unwrap().status(), 200);
    assert_eq!(delete(&second).await.unwrap().status(), 200);
    // A download through the other instance finds the deletion noted and drops its copy.
    assert_eq!(get(other.url(), first.clone()).await.0, 404);
    assert!(!other.state().media.is_cached(&first));
    // The other copy goes with the sweep of recent deletions, without anyone asking for it.
    assert!(other.state().media.is_cached(&second));
    let since = DeletionCursor::from_time(now_millis() - 60_000);
    other.state().media.sweep_deletions(since).await.unwrap();
    assert!(!other.state().media.is_cached(&second));
    assert_eq!(get(other.url(), second).await.0, 404);
    other.shutdown().await.unwrap();
    pair.stop().await;
    let _ = std::fs::remove_dir_all(other_dir);
}

/// The cache's sweeps on one instance: media whose deletion is noted (by another instance, here written to
/// the store directly) goes from the cache, in a pass over recent deletions or over the whole cache; files
/// older than the retention age go in the whole pass; and notes go with retention.
async fn media_deleted_elsewhere_is_swept_from_the_cache(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let state = pair.gateway.state();
    let media = &state.media;
    let ids = [upload(&pair).await, upload(&pair).await, upload(&pair).await];
    for id in &ids {
        assert_eq!(download(&pair, id).await.0, 200);
        assert!(media.is_cached(id));
    }
    let start = DeletionCursor::from_time(now_millis());
    // Nothing deleted: both passes keep every file.
    assert_eq!(media.sweep_deletions(start.clone()).await.unwrap(), start);
    assert_eq!(media.sweep_cache(Duration::from_secs(3600)).await.unwrap(), 0);
    assert!(ids.iter().all(|id| media.is_cached(id)));
    // The first one deleted elsewhere: the pass over recent deletions removes it and moves on past it.
    assert!(state.store.record_media_deleted(&ids[0]).await.unwrap());
    assert!(!state.store.record_media_deleted(&ids[0]).await.unwrap(), "the first note stands");
    let next = media.sweep_deletions(start.clone()).await.unwrap();
    assert_ne!(next, start);
    assert!(!media.is_cached(&ids[0]) && media.is_cached(&ids[1]));
    // The second one: the whole pass finds it too (an instance that was stopped when it was deleted).
    state.store.record_media_deleted(&ids[1]).await.unwrap();
    assert_eq!(media.sweep_cache(Duration::from_secs(3600)).await.unwrap(), 1);
    assert!(!media.is_cached(&ids[1]) && media.is_cached(&ids[2]));
    // Past the retention age, the whole pass removes what is left.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(media.sweep_cache(Duration::from_millis(10)).await.unwrap(), 1);
    assert!(!media.is_cached(&ids[2]));
    assert!(state.store.media_deleted(&ids[0]).await.unwrap());
    // Retention forgets the notes older than its cutoff, and only those.
    let pruned = state.store.prune_media_deleted(std::time::SystemTime::now() + Duration::from_secs(1));
    assert_eq!(pruned.await.unwrap(), 2);
    assert!(!state.store.media_deleted(&ids[0]).await.unwrap());
    pair.stop().await;
}

fn now_millis() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// Meta refusing a delete (here code 10, permission, on the delete call only): the deletion note written
/// before asking Meta is taken back, since Meta still has the media, which is still served.
async fn a_delete_meta_refuses_takes_its_note_back(db: TestDb) {
    let pair = Pair::start(config(&db), sandbox_config(|_| {})).await;
    let id = upload(&pair).await;
    assert_eq!(download(&pair, &id).await.0, 200);
    // Graph calls from now: the media lookup (1), the delete (2, refused), the lookup that finds it still there.
    pair.sandbox.control().set_fault(Some(wabridge_sandbox::FaultInjection {
        code: 10,
        next_n: Some(1),
        every_nth: Some(2),
        scope: wabridge_sandbox::FaultScope::All,
    }));
    let del =
        pair.http.delete(format!("{}/v1/media/{id}", pair.url)).bearer_auth(&pair.key).send().await.unwrap();
    assert!(del.status().is_client_error() || del.status().is_server_error(), "{}", del.status());
    pair.sandbox.control().set_fault(None);
    assert!(!pair.gateway.state().store.media_deleted(&id).await.unwrap(), "the note was taken back");
    let (status, _, _, bytes) = download(&pair, &id).await;
    assert_eq!((status, bytes.as_ref()), (200, JPEG));
    pair.stop().await;
}

/// The SDK pointed at the gateway's Cloud-compatible routes with the pair's API key, without retries.
fn gateway_sdk(pair: &Pair) -> Client {
    Client::builder()
        .base_url(pair.url.clone())
        .access_token(pair.key.clone())
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap()
}
