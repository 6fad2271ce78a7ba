//! Media: upload (multipart, limits checked first), info, download, delete.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wabridge_cloud::{Client, CloudError, MediaError, RetryPolicy, check_media};
use wabridge_types::limits::{MEDIA_MAX_BYTES, MediaKind};
use wabridge_types::{MediaId, PhoneNumberId};

use crate::harness::{Example, MockServer, PHONE_ID, TOKEN, assert_graph_call, graph_path};

const MEDIA_ID: &str = "2621233374848975";

#[tokio::test]
async fn upload_sends_a_multipart_form() {
    let example = Example::find("Media", "Upload Image");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();

    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
    let id = client
        .upload_media(&PhoneNumberId::new(PHONE_ID), jpeg.clone(), "image/jpeg", "photo.jpg")
        .await
        .unwrap();
    assert_eq!(id.as_str(), "4490709327384033");

    let req = server.only_request();
    assert_graph_call(&req, "POST", &graph_path(&[PHONE_ID, "media"]));
    example.assert_target(&req, &[("{{Phone-Number-ID}}", PHONE_ID)]);
    let content_type = req.header("content-type").unwrap();
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=").expect("multipart");
    let parts = multipart_parts(&req.body, boundary);
    // The reference's form fields, plus `type` (cloud-api.md §4).
    assert_eq!(parts.iter().find(|p| p.name == "messaging_product").unwrap().body, b"whatsapp");
    assert_eq!(parts.iter().find(|p| p.name == "type").unwrap().body, b"image/jpeg");
    let file = parts.iter().find(|p| p.name == "file").unwrap();
    assert_eq!(file.filename.as_deref(), Some("photo.jpg"));
    assert_eq!(file.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(file.body, jpeg);
}

#[tokio::test]
async fn media_limits_are_refused_before_any_request() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);

    let too_big = vec![0u8; usize::try_from(MediaKind::Image.max_bytes()).unwrap() + 1];
    let err = client.upload_media(&number, too_big, "image/jpeg", "big.jpg").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::TooLarge { kind: MediaKind::Image, .. })), "{err:?}");

    let err = client.upload_media(&number, vec![1u8; 10], "image/gif", "a.gif").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::UnsupportedType { .. })), "{err:?}");

    let err = client.upload_media(&number, Vec::new(), "image/png", "empty.png").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::Empty)), "{err:?}");
    assert!(!err.is_retryable());

    let sticker = vec![0u8; 500 * 1024 + 1];
    let err = client.upload_media(&number, sticker, "image/webp", "s.webp").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::TooLarge { kind: MediaKind::Sticker, .. })));

    assert!(server.requests().is_empty(), "the server saw {:?}", server.requests());
}

#[test]
fn check_media_follows_the_documented_limits() {
    assert_eq!(check_media("audio/ogg; codecs=opus", 16 * 1024 * 1024), Ok(MediaKind::Audio));
    assert!(check_media("audio/ogg", 16 * 1024 * 1024 + 1).is_err());
    assert_eq!(check_media("application/pdf", 100 * 1024 * 1024), Ok(MediaKind::Document));
    assert!(check_media("video/mp4", 16 * 1024 * 1024 + 1).is_err());
    assert!(check_media("application/zip", 1).is_err());
}

#[tokio::test]
async fn media_info_with_and_without_the_phone_number() {
    let example = Example::find("Media", "Retrieve Media URL");
    let server = MockServer::start().await;
    server.reply(200, &example.response).reply(200, &example.response);
    let client = server.client().build().unwrap();
    let media = MediaId::new(MEDIA_ID);

    let info = client.media_info_for(&media, &PhoneNumberId::new(PHONE_ID)).await.unwrap();
    assert_eq!(info.mime_type, "image/jpeg");
    assert_eq!(info.file_size.bytes, 303_833);
    assert_eq!(info.id.as_str(), MEDIA_ID);
    client.media_info(&media).await.unwrap();

    let reqs = server.requests();
    assert_graph_call(&reqs[0], "GET", &graph_path(&[MEDIA_ID]));
    example.assert_target(&reqs[0], &[("{{Media-ID}}", MEDIA_ID), ("<PHONE_NUMBER_ID>", PHONE_ID)]);
    assert_graph_call(&reqs[1], "GET", &graph_path(&[MEDIA_ID]));
    assert!(reqs[1].query_without_proof().is_empty());
    assert!(reqs[1].body.is_empty());
}

#[tokio::test]
async fn download_uses_the_bearer_token_and_returns_bytes() {
    let server = MockServer::start().await;
    let bytes = vec![0xFF, 0xD8, 0x00, 0x42];
    server.reply_raw(200, bytes.clone(), "image/jpeg");
    let client = server.client().build().unwrap();
    let url = format!("{}/whatsapp_business/attachments/?mid={MEDIA_ID}&ext=1&hash=abc", server.url());
    let got = client.download_media(&url).await.unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());

    let req = server.only_request();
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/whatsapp_business/attachments/");
    assert_eq!(req.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    // Meta's URL is called as given: its own query, no proof added.
    assert_eq!(req.query_value("mid"), Some(MEDIA_ID));
    assert_eq!(req.query_value("appsecret_proof"), None);
}

#[tokio::test]
async fn a_download_comes_with_its_content_type() {
    let server = MockServer::start().await;
    server.reply_raw(200, b"%PDF-1.7".to_vec(), "application/pdf");
    let client = server.client().build().unwrap();
    let got = client.download_media_with_type(&format!("{}/media?mid=1", server.url())).await.unwrap();
    assert_eq!(got.bytes.as_ref(), b"%PDF-1.7");
    assert_eq!(got.content_type.as_deref(), Some("application/pdf"));
}

/// Answers every connection with `head`, then (for a chunked answer) `stream` bytes of body in 1 MiB chunks;
/// counts the connections. Plain TCP, so an answer can announce a size it does not send.
async fn raw_server(head: &'static str, stream: u64) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 1 << 20];
                let mut sent = 0;
                while sent < stream {
                    let size = format!("{:x}\r\n", chunk.len());
                    let framed = [size.as_bytes(), &chunk[..], &b"\r\n"[..]].concat();
                    if socket.write_all(&framed).await.is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
                // Hold the connection until the client is done with it.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    (url, connections)
}

fn raw_client(url: &str) -> Client {
    Client::builder()
        .base_url(url)
        .access_token(TOKEN)
        .no_proxy()
        .retry(RetryPolicy::default())
        .build()
        .unwrap()
}

/// A download announced larger than the largest media WhatsApp allows (a 100 MB document) is refused at
/// once, without reading it, and not retried.
#[tokio::test]
async fn a_download_announced_too_large_is_refused() {
    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: 104857601\r\n\r\n";
    assert_eq!(MEDIA_MAX_BYTES, 104_857_600);
    let (url, connections) = raw_server(HEAD, 0).await;
    let err = raw_client(&url).download_media(&format!("{url}/media?mid=1")).await.unwrap_err();
    assert!(matches!(err, CloudError::MediaTooLarge { limit: MEDIA_MAX_BYTES }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("104857600"), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// A download without a length stops as soon as it passes the limit.
#[tokio::test]
async fn a_streamed_download_stops_at_the_limit() {
    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ntransfer-encoding: chunked\r\n\r\n";
    let (url, connections) = raw_server(HEAD, MEDIA_MAX_BYTES + 1).await;
    let err = raw_client(&url).download_media(&format!("{url}/media?mid=1")).await.unwrap_err();
    assert!(matches!(err, CloudError::MediaTooLarge { .. }), "{err:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_download_url_is_an_error() {
    let server = MockServer::start().await;
    server.reply_raw(404, b"Not Found".to_vec(), "text/plain");
    let client = server.client().build().unwrap();
    let err = client.download_media(&format!("{}/gone", server.url())).await.unwrap_err();
    assert!(matches!(err, CloudError::Status { status: 404, .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn the_token_is_never_sent_in_clear_text_to_another_host() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    let err = client.download_media("http://198.51.100.7/media?mid=1").await.unwrap_err();
    assert!(matches!(err, CloudError::Url(_)), "{err:?}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn delete_media() {
    let example = Example::find("Media", "Delete Media");
    let server = MockServer::start().await;
    server.reply(200, &example.response).reply(200, &example.response);
    let client = server.client().build().unwrap();
    let media = MediaId::new(MEDIA_ID);
    client.delete_media_for(&media, &PhoneNumberId::new(PHONE_ID)).await.unwrap();
    client.delete_media(&media).await.unwrap();

    let reqs = server.requests();
    assert_eq!(example.method, "DELETE");
    assert_graph_call(&reqs[0], "DELETE", &graph_path(&[MEDIA_ID]));
    example.assert_target(&reqs[0], &[("{{Media-ID}}", MEDIA_ID), ("<PHONE_NUMBER_ID>", PHONE_ID)]);
    assert_graph_call(&reqs[1], "DELETE", &graph_path(&[MEDIA_ID]));
}

/// Ids that `url` would read as `.` or `..` (also percent-encoded), empty ids, and ids with characters no
/// Graph id has are refused before any request; ids shaped like Meta's (digits, wamids with base64) go.
#[tokio::test]
async fn ids_that_are_no_path_segment_are_refused() {
    let server = MockServer::start().await;
    let client = server.client().build().unwrap();
    for id in
        ["%2e%2e", "%2E%2E", ".%2e", "%2e", ".", "..", "", "a b", "x\\y", "a?b", "a#b", "caf\u{e9}", "1\n"]
    {
        let err = client.media_info(&MediaId::new(id)).await.unwrap_err();
        assert!(matches!(err, CloudError::Invalid(_)), "{id:?}: {err:?}");
        assert!(err.to_string().contains("invalid request") && !err.is_retryable(), "{id:?}");
        let err = client.delete_media(&MediaId::new(id)).await.unwrap_err();
        assert!(matches!(err, CloudError::Invalid(_)), "{id:?}: {err:?}");
    }
    let err = client.throughput(&PhoneNumberId::new("..")).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)), "{err:?}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    let info = json!({"messaging_product": "whatsapp", "url": "https://lookaside.example/x",
        "mime_type": "image/jpeg", "sha256": "abc", "file_size": 10, "id": "1"});
    let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3NDAzQzYxRjk4MjkxMkE5QzEA==";
    for id in [MEDIA_ID, wamid, "ab+c/d=="] {
        server.reply(200, &info);
        client.media_info(&MediaId::new(id)).await.unwrap();
    }
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [graph_path(&[MEDIA_ID]), graph_path(&[wamid]), graph_path(&["ab+c%2Fd=="])],
        "each id is one path segment"
    );
}

#[tokio::test]
async fn an_id_cannot_add_path_segments() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"success": true}));
    let client = server.client().build().unwrap();
    client.delete_media(&MediaId::new("../evil")).await.unwrap();
    assert_eq!(server.only_request().path, format!("/{}/..%2Fevil", crate::harness::VERSION));
}

struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A small multipart/form-data reader, enough for the client's forms.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let text = body;
    let mut chunks = split_bytes(text, delimiter.as_bytes());
    chunks.remove(0);
    for chunk in chunks {
        if chunk.starts_with(b"--") {
            break;
        }
        let chunk = chunk.strip_prefix(b"\r\n").unwrap();
        let split = find(chunk, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&chunk[..split]).to_string();
        let mut content = chunk[split + 4..].to_vec();
        if content.ends_with(b"\r\n") {
            content.truncate(content.len() - 2);
        }
        let mut part = Part { name: String::new(), filename: None, content_type: None, body: content };
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition") {
                part.name = attr(line, "name").unwrap();
                part.filename = attr(line, "filename");
            } else if lower.starts_with("content-type:") {
                part.content_type = Some(line["content-type:".len()..].trim().to_owned());
            }
        }
        parts.push(part);
    }
    parts
}

fn attr(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=\"");
    let start = line.find(&needle)? + needle.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut hay: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, delimiter) {
        out.push(&hay[..i]);
        hay = &hay[i + delimiter.len()..];
    }
    out.push(hay);
    out
}

/// A file of one test under the system's temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn with(name: &str, bytes: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wabridge-cloud-{name}-{}-{n}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bytes that are not all alike, so a chunk sent twice or out of order shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

/// An upload from a file sends the form an upload from memory sends, with a length: the file's first `len`
/// bytes (more than one chunk of it here), named and typed as given.
#[tokio::test]
async fn a_file_upload_sends_the_same_multipart_form() {
    let example = Example::find("Media", "Upload Image");
    let server = MockServer::start().await;
    server.reply(200, &example.response);
    let client = server.client().build().unwrap();

    let content = patterned(200_000);
    // What follows the announced length is not sent.
    let file = TempFile::with("form", &[&content[..], b"not sent"].concat());
    let number = PhoneNumberId::new(PHONE_ID);
    let len = content.len() as u64;
    let id = client.upload_media_file(&number, &file.0, len, "image/jpeg", "photo.jpg").await.unwrap();
    assert_eq!(id.as_str(), "4490709327384033");

    let req = server.only_request();
    assert_graph_call(&req, "POST", &graph_path(&[PHONE_ID, "media"]));
    // Every part's length is known, so the request has a Content-Length (no chunked encoding).
    assert_eq!(req.header("content-length"), Some(req.body.len().to_string().as_str()));
    let content_type = req.header("content-type").unwrap();
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=").expect("multipart");
    let parts = multipart_parts(&req.body, boundary);
    assert_eq!(parts.iter().find(|p| p.name == "messaging_product").unwrap().body, b"whatsapp");
    assert_eq!(parts.iter().find(|p| p.name == "type").unwrap().body, b"image/jpeg");
    let part = parts.iter().find(|p| p.name == "file").unwrap();
    assert_eq!(part.filename.as_deref(), Some("photo.jpg"));
    assert_eq!(part.content_type.as_deref(), Some("image/jpeg"));
    assert!(part.body == content, "the file part is not the file's first {len} bytes");
}

/// The type and the announced length are checked before the file is opened; a file that cannot be opened
/// is [`CloudError::File`], not retried, and nothing is sent either way.
#[tokio::test]
async fn a_file_upload_is_checked_before_anything_is_sent() {
    let server = MockServer::start().await;
    let client = server.client().retry(RetryPolicy::default()).build().unwrap();
    let number = PhoneNumberId::new(PHONE_ID);
    let missing = std::env::temp_dir().join(format!("wabridge-cloud-missing-{}", std::process::id()));

    let too_big = MediaKind::Image.max_bytes() + 1;
    let err = client.upload_media_file(&number, &missing, too_big, "image/jpeg", "a.jpg").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::TooLarge { kind: MediaKind::Image, .. })), "{err:?}");
    let err = client.upload_media_file(&number, &missing, 10, "image/gif", "a.gif").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::UnsupportedType { .. })), "{err:?}");
    let err = client.upload_media_file(&number, &missing, 0, "image/png", "a.png").await.unwrap_err();
    assert!(matches!(err, CloudError::Media(MediaError::Empty)), "{err:?}");

    let err = client.upload_media_file(&number, &missing, 10, "image/png", "a.png").await.unwrap_err();
    match &err {
        CloudError::File(io) => assert_eq!(io.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected a file error, got {other:?}"),
    }
    assert!(!err.is_retryable() && !err.outcome_unknown());
    assert!(server.requests().is_empty(), "the server saw {:?}", server.requests());
}

/// A file shorter than its announced length fails the upload (rather than sending a truncated file), and it
/// is not tried again: the server may have seen part of it.
#[tokio::test]
async fn a_file_shorter_than_announced_fails_the_upload() {
    let server = MockServer::start().await;
    server.reply(200, &json!({"id": "1"}));
    let clock = wabridge_cloud::time::ManualClock::new();
    let client = server.client().retry(RetryPolicy::default()).sleeper(clock.clone()).build().unwrap();
    let file = TempFile::with("short", &patterned(1000));
    let err = client
        .upload_media_file(&PhoneNumberId::new(PHONE_ID), &file.0, 5000, "image/png", "a.png")
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Http(_)), "{err:?}");
    assert!(clock.sleeps().is_empty(), "retried: {:?}", clock.sleeps());
}

/// Meta refusing an upload from a file for a transient reason: the retry opens the file again and sends it
/// whole.
#[tokio::test]
async fn a_retried_file_upload_sends_the_whole_file_again() {
    let example = Example::find("Media", "Upload Image");
    let server = MockServer::start().await;
    let unavailable = json!({"error": {"message": "(#2) Service temporarily unavailable", "type": "OAuthException",
        "code": 2, "fbtrace_id": "T"}});
    server.reply(503, &unavailable).reply(200, &example.response);
    let clock = wabridge_cloud::time::ManualClock::new();
    let client = server
        .client()
        .retry(RetryPolicy::default())
        .sleeper(clock.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let content = patterned(150_000);
    let file = TempFile::with("retried", &content);
    let number = PhoneNumberId::new(PHONE_ID);
    let id =
        client.upload_media_file(&number, &file.0, content.len() as u64, "image/png", "a.png").await.unwrap();
    assert_eq!(id.as_str(), "4490709327384033");
    assert_eq!(clock.sleeps().len(), 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for req in requests {
        let content_type = req.header("content-type").unwrap();
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        let parts = multipart_parts(&req.body, boundary);
        assert!(parts.iter().find(|p| p.name == "file").unwrap().body == content, "a partial file was sent");
    }
}

/// A sandbox and a client for it (the given retry policy, a manual clock: retries do not wait).
async fn sandbox_client(
    policy: RetryPolicy,
) -> (wabridge_sandbox::Sandbox, Client, wabridge_cloud::time::ManualClock) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = wabridge_sandbox::Sandbox::start(wabridge_sandbox::SandboxConfig::for_tests(), listener)
        .await
        .unwrap();
    let clock = wabridge_cloud::time::ManualClock::new();
    let mut builder = Client::builder()
        .base_url(sandbox.base_url())
        .access_token(sandbox.access_token())
        .no_proxy()
        .retry(policy)
        .sleeper(clock.clone())
        .clock(clock.clone());
    if let Some(secret) = sandbox.app_secret() {
        builder = builder.app_secret(secret);
    }
    (sandbox, builder.build().unwrap(), clock)
}

/// A 20 MiB document streamed from disk reaches the emulator whole: its media node has the file's size and
/// its download is the file.
#[tokio::test]
async fn a_large_file_upload_reaches_the_sandbox_whole() {
    let (sandbox, client, _) = sandbox_client(RetryPolicy::default().with_max_attempts(1)).await;
    let number = PhoneNumberId::new(sandbox.phone_number_ids()[0].clone());
    let content = patterned(20 * 1024 * 1024);
    let file = TempFile::with("large", &content);
    let id = client
        .upload_media_file(&number, &file.0, content.len() as u64, "application/pdf", "big.pdf")
        .await
        .unwrap();
    let info = client.media_info(&id).await.unwrap();
    assert_eq!((info.mime_type.as_str(), info.file_size.bytes), ("application/pdf", content.len() as u64));
    let downloaded = client.download_media(&info.url).await.unwrap();
    assert!(downloaded.as_ref() == content.as_slice(), "the sandbox has other bytes than the file's");
    sandbox.shutdown().await;
}

/// The emulator refusing an upload from a file once (an injected transient error): the client tries again,
/// reopening the file, and the second attempt's bytes are the file's.
#[tokio::test]
async fn a_file_upload_is_retried_after_a_transient_failure() {
    let (sandbox, client, clock) = sandbox_client(RetryPolicy::default()).await;
    let number = PhoneNumberId::new(sandbox.phone_number_ids()[0].clone());
    sandbox.control().set_fault(Some(wabridge_sandbox::FaultInjection {
        code: 2,
        next_n: Some(1),
        every_nth: None,
        scope: wabridge_sandbox::FaultScope::All,
    }));
    let content = patterned(100_000);
    let file = TempFile::with("sandbox-retry", &content);
    let id =
        client.upload_media_file(&number, &file.0, content.len() as u64, "image/png", "a.png").await.unwrap();
    assert_eq!(clock.sleeps().len(), 1, "one retry after the injected error");
    let info = client.media_info(&id).await.unwrap();
    assert_eq!(client.download_media(&info.url).await.unwrap().as_ref(), content.as_slice());
    sandbox.shutdown().await;
}
