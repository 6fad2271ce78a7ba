//! wabridge's own HTTP load generator: a fixed number of keep-alive HTTP/1.1 connections, each sending
//! its next request as soon as the previous answer is read (closed loop, like wrk), for a fixed
//! duration or request count. It runs on its own Tokio runtime, on threads of its own, so it competes
//! with the server for the machine's cores the way an external tool would.
//!
//! Like wrk, it is lean on purpose: each connection is one task that writes the request's bytes as they
//! are and reads the answer with a minimal parser (status line, `Content-Length` or chunked framing,
//! `Connection: close`), with no client library between. Whatever it spends is CPU the server under test
//! does not get on a shared machine, so the less it spends, the closer its figures come to the server's.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes the `n`-th request of connection `conn`, serialized as HTTP/1.1 (head and body), into `out`
/// (empty on entry). Must be cheap: it runs inside the timed loop.
pub trait RequestFactory: Send + Sync + 'static {
    /// Appends the request's bytes to `out`.
    fn build(&self, conn: usize, n: u64, out: &mut Vec<u8>);
}

impl<F> RequestFactory for F
where
    F: Fn(usize, u64, &mut Vec<u8>) + Send + Sync + 'static,
{
    fn build(&self, conn: usize, n: u64, out: &mut Vec<u8>) {
        self(conn, n, out);
    }
}

/// How hard and how long to push.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub target: SocketAddr,
    pub connections: usize,
    /// Threads of the load generator's runtime.
    pub threads: usize,
    pub duration: Duration,
    /// Stop after this many requests in total, if set (whichever comes first).
    pub max_requests: Option<u64>,
    /// Requests before measuring starts (connections warm, caches filled); not counted.
    pub warmup: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    /// Answers by status code (e.g. 200, 400, 401).
    pub statuses: Vec<(u16, u64)>,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// A simple latency recorder with fixed relative precision: buckets of 1 µs up to 1 ms, then
/// logarithmic with 1 % width. Mergeable across connections.
#[derive(Debug, Clone)]
pub struct Latencies {
    counts: Vec<u64>,
    max_us: u64,
}

const LINEAR_US: u64 = 1000;

impl Default for Latencies {
    fn default() -> Self {
        Self { counts: vec![0; bucket_of(60_000_000) + 1], max_us: 0 }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR_US {
        return usize::try_from(us).unwrap_or(0);
    }
    // ln(us / 1000) / ln(1.01)
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let log = ((us as f64 / LINEAR_US as f64).ln() / 1.01f64.ln()) as usize;
    usize::try_from(LINEAR_US).unwrap_or(0) + log
}

fn value_of(bucket: usize) -> f64 {
    let linear = usize::try_from(LINEAR_US).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    if bucket < linear {
        bucket as f64
    } else {
        LINEAR_US as f64 * 1.01f64.powi(i32::try_from(bucket - linear).unwrap_or(i32::MAX))
    }
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).min(60_000_000);
        let b = bucket_of(us).min(self.counts.len() - 1);
        self.counts[b] += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds another recorder's counts.
    pub fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    /// How many latencies were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i) / 1000.0;
            }
        }
        self.max_ms()
    }

    /// The largest latency recorded, in milliseconds.
    #[must_use]
    pub fn max_ms(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let ms = self.max_us as f64 / 1000.0;
        ms
    }
}

struct ConnResult {
    latencies: Latencies,
    requests: u64,
    errors: u64,
    statuses: Vec<(u16, u64)>,
}

fn count_status(statuses: &mut Vec<(u16, u64)>, code: u16) {
    match statuses.iter_mut().find(|(c, _)| *c == code) {
        Some((_, n)) => *n += 1,
        None => statuses.push((code, 1)),
    }
}

/// An answer longer than this, head or body, is an error (the scenarios' answers are small).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// No answer within this is an error (and the connection is replaced).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

async fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// What the head of an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

/// Parses the head of an answer at the start of `buf`: `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = Framing::UntilClose;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked")) {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // Answers that have no body whatever their headers say.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok(Some(Head { len, status, framing, close }))
}

/// Where the chunked body starting at `buf[0]` ends (past its last chunk and trailer), if it is all there.
fn chunked_end(buf: &[u8]) -> io::Result<Option<usize>> {
    let mut pos = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")),
        };
        pos += used;
        if size == 0 {
            // Trailer fields (none expected), each on its line, then the empty line.
            let mut at = pos;
            loop {
                match buf[at..].windows(2).position(|w| w == b"\r\n") {
                    None => return Ok(None),
                    Some(0) => return Ok(Some(at + 2)),
                    Some(j) => at += j + 2,
                }
            }
        }
        let size = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk too large"))?;
        let end = pos.saturating_add(size).saturating_add(2);
        if buf.len() < end {
            return Ok(None);
        }
        pos = end;
    }
}

/// Sends `req` on `stream` and reads the whole answer into `rbuf`: its status and whether the server
/// will close the connection after it.
async fn exchange(stream: &mut TcpStream, req: &[u8], rbuf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    stream.write_all(req).await?;
    rbuf.clear();
    let head = loop {
        if let Some(head) = parse_head(rbuf)? {
            break head;
        }
        read_more(stream, rbuf, true).await?;
    };
    loop {
        let body = &rbuf[head.len..];
        let complete = match head.framing {
            Framing::Length(n) => body.len() >= n,
            Framing::Chunked => chunked_end(body)?.is_some(),
            Framing::UntilClose => false,
        };
        if complete {
            return Ok((head.status, head.close));
        }
        if !read_more(stream, rbuf, head.framing != Framing::UntilClose).await? {
            return Ok((head.status, true));
        }
    }
}

/// Reads what is there into `rbuf`; false at the end of the stream, an error there if `need_more`.
async fn read_more(stream: &mut TcpStream, rbuf: &mut Vec<u8>, need_more: bool) -> io::Result<bool> {
    if rbuf.len() >= MAX_RESPONSE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "answer too large"));
    }
    rbuf.reserve(16 * 1024);
    if stream.read_buf(rbuf).await? == 0 {
        if need_more {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-answer"));
        }
        return Ok(false);
    }
    Ok(true)
}

async fn run_connection(
    conn: usize,
    plan: LoadPlan,
    factory: Arc<dyn RequestFactory>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    budget: Arc<AtomicU64>,
) -> ConnResult {
    let mut result =
        ConnResult { latencies: Latencies::default(), requests: 0, errors: 0, statuses: Vec::new() };
    let mut stream = match connect(plan.target).await {
        Ok(s) => Some(s),
        Err(_) => {
            result.errors += 1;
            return result;
        }
    };
    let mut req = Vec::with_capacity(4096);
    let mut rbuf = Vec::with_capacity(16 * 1024);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let counted = measuring.load(Ordering::Relaxed);
        // One request of the budget, if any is left (never below zero, whatever the other connections do).
        if counted
            && plan.max_requests.is_some()
            && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err()
        {
            break;
        }
        req.clear();
        factory.build(conn, n, &mut req);
        n += 1;
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(plan.target).await {
                Ok(s) => stream.insert(s),
                Err(_) => break,
            },
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(ANSWER_TIMEOUT, exchange(s, &req, &mut rbuf)).await;
        let elapsed = started.elapsed();
        let status = match outcome {
            Ok(Ok((status, close))) => {
                if close {
                    stream = None;
                }
                Some(status)
            }
            Ok(Err(_)) | Err(_) => {
                stream = None;
                None
            }
        };
        // A timed run counts what completed inside its window (the rate divides by the window); a run with
        // a request budget counts every request of the budget.
        if !counted || (plan.max_requests.is_none() && stop.load(Ordering::Relaxed)) {
            continue;
        }
        result.requests += 1;
        match status {
            Some(status) => {
                count_status(&mut result.statuses, status);
                result.latencies.record(elapsed);
            }
            None => result.errors += 1,
        }
    }
    result
}

/// Runs the plan against `plan.target` with requests from `factory`, on a runtime of its own.
pub fn run(plan: LoadPlan, factory: Arc<dyn RequestFactory>) -> LoadReport {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads.max(1))
        .thread_name("load")
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return empty_report();
    };
    runtime.block_on(async move {
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let budget = Arc::new(AtomicU64::new(plan.max_requests.unwrap_or(u64::MAX)));
        let mut tasks = Vec::new();
        for conn in 0..plan.connections {
            tasks.push(tokio::spawn(run_connection(
                conn,
                plan.clone(),
                factory.clone(),
                measuring.clone(),
                stop.clone(),
                budget.clone(),
            )));
        }
        tokio::time::sleep(plan.warmup).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        // Stop at the deadline, or earlier once the request budget is spent.
        while started.elapsed() < plan.duration {
            if plan.max_requests.is_some() && budget.load(Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let window = started.elapsed();
        let mut latencies = Latencies::default();
        let (mut requests, mut errors) = (0, 0);
        let mut statuses: Vec<(u16, u64)> = Vec::new();
        for t in tasks {
            if let Ok(r) = t.await {
                latencies.merge(&r.latencies);
                requests += r.requests;
                errors += r.errors;
                for (code, n) in r.statuses {
                    match statuses.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, m)) => *m += n,
                        None => statuses.push((code, n)),
                    }
                }
            }
        }
        // The window of a timed run; a run with a budget lasts until its last request is answered.
        let seconds = if plan.max_requests.is_some() { started.elapsed() } else { window }.as_secs_f64();
        statuses.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        let rps = requests as f64 / seconds;
        LoadReport {
            requests,
            errors,
            statuses,
            seconds,
            rps,
            p50_ms: latencies.quantile_ms(0.50),
            p99_ms: latencies.quantile_ms(0.99),
            p999_ms: latencies.quantile_ms(0.999),
            max_ms: latencies.max_ms(),
        }
    })
}

fn empty_report() -> LoadReport {
    LoadReport {
        requests: 0,
        errors: 1,
        statuses: Vec::new(),
        seconds: 0.0,
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
    }
}

/// Writes a `POST` of the JSON `body` to `path`, with `host` and extra `headers`, as HTTP/1.1 bytes.
pub fn post_json(out: &mut Vec<u8>, path: &str, host: &str, body: &[u8], headers: &[(&str, &str)]) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut l = Latencies::default();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us));
        }
        let p50 = l.quantile_ms(0.5);
        assert!((p50 - 5.0).abs() / 5.0 < 0.011, "p50 {p50}");
        let p99 = l.quantile_ms(0.99);
        assert!((p99 - 9.9).abs() / 9.9 < 0.011, "p99 {p99}");
        assert!((l.max_ms() - 10.0).abs() < 1e-9);
        assert_eq!(l.count(), 10_000);
    }

    #[test]
    fn heads_are_parsed_with_their_framing() {
        let partial = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n";
        assert_eq!(parse_head(partial).unwrap(), None);
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let head = parse_head(full).unwrap().unwrap();
        assert_eq!(
            head,
            Head { len: full.len() - 2, status: 200, framing: Framing::Length(2), close: false }
        );
        let chunked = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((chunked.status, chunked.framing, chunked.close), (401, Framing::Chunked, true));
        let no_body = parse_head(b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n").unwrap().unwrap();
        assert_eq!(no_body.framing, Framing::Length(0));
        let old = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((old.framing, old.close), (Framing::UntilClose, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(chunked_end(body).unwrap(), Some(body.len()));
        // Every proper prefix is incomplete, never an error or a wrong end.
        for cut in 0..body.len() {
            assert_eq!(chunked_end(&body[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(chunked_end(b"0\r\n\r\n").unwrap(), Some(5));
        assert!(chunked_end(b"zz\r\n").is_err());
    }

    /// Runs the generator against a real server whose answers use every framing it handles, one route
    /// closing the connection after each answer: every request is answered and counted, none is an error.
    #[test]
    fn loads_a_real_server_across_framings_and_closes() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::post;

        let server_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let target = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/length", post(|_b: bytes::Bytes| async { "fixed" }))
            .route(
                "/chunked",
                post(|_b: bytes::Bytes| async {
                    let parts: Vec<Result<bytes::Bytes, std::io::Error>> =
                        vec![Ok("one".into()), Ok("two".into())];
                    Body::from_stream(futures_util::stream::iter(parts))
                }),
            )
            .route(
                "/close",
                post(|_b: bytes::Bytes| async { ([(http::header::CONNECTION, "close")], "bye") }),
            )
            .route("/teapot", post(|| async { (http::StatusCode::IM_A_TEAPOT, "no") }));
        let server = std::thread::spawn(move || {
            server_rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), axum::serve(listener, app)).await;
            });
        });
        let factory = Arc::new(|_c: usize, n: u64, out: &mut Vec<u8>| {
            let path = ["/length", "/chunked", "/close", "/teapot"][usize::try_from(n % 4).unwrap()];
            post_json(out, path, "bench", br#"{"n":1}"#, &[("x-extra", "1")]);
        });
        let plan = LoadPlan {
            target,
            connections: 4,
            threads: 2,
            duration: Duration::from_secs(20),
            max_requests: Some(400),
            warmup: Duration::ZERO,
        };
        let report = run(plan, factory);
        assert_eq!(report.errors, 0, "{report:?}");
        assert_eq!(report.requests, 400, "{report:?}");
        let teapots = report.statuses.iter().find(|(c, _)| *c == 418).map_or(0, |(_, n)| *n);
        let oks = report.statuses.iter().find(|(c, _)| *c == 200).map_or(0, |(_, n)| *n);
        assert_eq!(teapots + oks, 400, "{report:?}");
        assert!(teapots >= 90 && oks >= 290, "{report:?}");
        drop(server);
    }
}
