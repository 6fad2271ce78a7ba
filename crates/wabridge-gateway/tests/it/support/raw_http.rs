//! HTTP/1.1 written by hand on a TCP connection, for what an HTTP client hides: a large body sent while the
//! answer may already be coming back, a chunked body without a length, and a request held open after the
//! server has started reading it (`Expect: 100-continue`).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bodies are written in pieces of this size (and chunked bodies in chunks of it).
const PIECE: usize = 64 * 1024;

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// With `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`, no `Content-Length`.
    Chunked,
}

/// The head of `POST {path}` with `headers`, ending with its blank line.
fn post_head(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads one response head, byte by byte up to its blank line (so nothing after it is consumed), and
/// returns its status code; `None` when the connection ended or failed first.
async fn read_status(stream: &mut (impl AsyncRead + Unpin)) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.split_whitespace().nth(1)?;
    Some(status.parse().expect("a numeric status"))
}

/// POSTs `body` to `path` with `headers` (the framing header is added), writing the body while reading
/// the answer: a server may answer (413) and close before it has read everything. The status, or `None`
/// when the connection ended without one.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    framing: Framing,
) -> Option<u16> {
    let mut headers = headers.to_vec();
    match framing {
        Framing::Length => headers.push(("content-length", body.len().to_string())),
        Framing::Chunked => headers.push(("transfer-encoding", "chunked".to_owned())),
    }
    let head = post_head(addr, path, &headers);
    let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for piece in body.chunks(PIECE) {
            if framing == Framing::Chunked {
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
            }
            writer.write_all(piece).await?;
            if framing == Framing::Chunked {
                writer.write_all(b"\r\n").await?;
            }
        }
        if framing == Framing::Chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        writer.flush().await?;
        // Kept open (not shut down) until the answer is read: the server must answer a complete request.
        std::future::pending::<std::io::Result<()>>().await
    });
    let status = read_status(&mut reader).await;
    writing.abort();
    status
}

/// A request whose head the server has read and whose body its handler has started to read (the server
/// answered `100 Continue`), with the body not sent yet: a request in flight for as long as the test likes.
#[derive(Debug)]
pub struct HeldRequest {
    stream: TcpStream,
    body: Vec<u8>,
}

impl HeldRequest {
    /// Sends the head of `POST {path}` with `Expect: 100-continue` and waits for the server's
    /// `100 Continue`.
    pub async fn start(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Self {
        let mut headers = headers.to_vec();
        headers.push(("content-length", body.len().to_string()));
        headers.push(("expect", "100-continue".to_owned()));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(post_head(addr, path, &headers).as_bytes()).await.unwrap();
        assert_eq!(read_status(&mut stream).await, Some(100), "the server did not start reading the body");
        Self { stream, body }
    }

    /// Sends the body and reads the final status; `None` when the connection ended without one.
    pub async fn finish(mut self) -> Option<u16> {
        self.stream.write_all(&self.body).await.ok()?;
        read_status(&mut self.stream).await
    }
}
