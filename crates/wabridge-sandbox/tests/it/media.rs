//! Media: upload, info, download with the token only, expiry of the URL, delete, type and size limits.

use std::time::Duration;

use sha2::{Digest, Sha256};
use wabridge_sandbox::SandboxConfig;
use wabridge_types::MediaId;

use crate::support::{Harness, code, webp};

#[tokio::test]
async fn upload_info_download_delete() {
    let h = Harness::for_tests().await;
    let bytes = b"%PDF-1.4 sandbox".to_vec();
    let id = h.client.upload_media(&h.number(), bytes.clone(), "application/pdf", "a.pdf").await.unwrap();
    let info = h.client.media_info(&id).await.unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.mime_type, "application/pdf");
    assert_eq!(info.file_size.bytes, bytes.len() as u64);
    assert!(info.file_size.as_string, "Meta sends file_size as a string");
    assert_eq!(info.sha256, hex::encode(Sha256::digest(&bytes)));
    let downloaded = h.client.download_media(&info.url).await.unwrap();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());
    // Without the bearer token: refused.
    let anonymous = reqwest::get(&info.url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    h.client.delete_media(&id).await.unwrap();
    assert_eq!(code(h.client.media_info(&id).await).0, 100);
    assert_eq!(code(h.client.delete_media(&id).await).0, 100);
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn download_url_expires() {
    let mut config = SandboxConfig::for_tests();
    config.media.url_ttl = Duration::from_millis(300);
    let h = Harness::start(config).await;
    let id = h.client.upload_media(&h.number(), vec![1u8; 10], "image/jpeg", "a.jpg").await.unwrap();
    let info = h.client.media_info(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(320)).await;
    let error = h.client.download_media(&info.url).await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    // A fresh URL works again.
    let info = h.client.media_info(&id).await.unwrap();
    h.client.download_media(&info.url).await.unwrap();
    h.sandbox.shutdown().await;
}

async fn upload_raw(h: &Harness, mime: &str, size: usize) -> (u16, serde_json::Value) {
    upload_bytes(h, mime, vec![0u8; size]).await
}

async fn upload_bytes(h: &Harness, mime: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("f").mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime.to_owned())
        .part("file", part);
    let response = reqwest::Client::new()
        .post(h.url(&format!("{}/media", h.number())))
        .bearer_auth(h.sandbox.access_token())
        .multipart(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Sent raw: the SDK refuses such files before sending.
#[tokio::test]
async fn type_and_size_limits() {
    let h = Harness::for_tests().await;
    let (status, body) = upload_raw(&h, "image/gif", 10).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(131_053)), "{body}");
    assert!(body["error"]["error_data"]["details"].as_str().unwrap().contains("image/gif"));
    let (status, body) = upload_raw(&h, "image/png", 5 * 1024 * 1024 + 1).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(131_053)), "{body}");
    let (status, body) = upload_raw(&h, "image/png", 5 * 1024 * 1024).await;
    assert_eq!(status, 200, "{body}");
    let id = MediaId::new(body["id"].as_str().unwrap());
    assert_eq!(h.client.media_info(&id).await.unwrap().file_size.bytes, 5 * 1024 * 1024);
    h.sandbox.shutdown().await;
}

/// Stickers: 100 KB when static, 500 KB when animated, told apart by the WebP header.
#[tokio::test]
async fn sticker_limits_depend_on_animation() {
    let h = Harness::for_tests().await;
    const KB: usize = 1024;
    for (animated, size, accepted) in [
        (false, 100 * KB, true),
        (false, 100 * KB + 2, false),
        (true, 100 * KB + 2, true),
        (true, 500 * KB, true),
        (true, 500 * KB + 2, false),
    ] {
        let (status, body) = upload_bytes(&h, "image/webp", webp(animated, size)).await;
        if accepted {
            assert_eq!(status, 200, "animated {animated}, {size} bytes: {body}");
        } else {
            assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(131_053)), "{body}");
            let details = body["error"]["error_data"]["details"].as_str().unwrap();
            let kind = if animated { "animated" } else { "static" };
            assert!(details.contains(kind), "{details}");
        }
    }
    // A file that is not a WebP at all is held to the static limit.
    let (status, body) = upload_raw(&h, "image/webp", 100 * KB + 1).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(131_053)), "{body}");
    h.sandbox.shutdown().await;
}
