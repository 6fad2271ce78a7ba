//! wabridge's own HTTP load generator: a fixed number of keep-alive HTTP/1.1 connections, each sending
//! its next request as soon as the previous answer is read (closed loop, like wrk), for a fixed
//! duration or request count. It runs on its own Tokio runtime, on threads of its own, so it competes
//! with the server for the machine's cores the way an external tool would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;

/// Builds the `n`-th request of connection `conn`. Must be cheap: it runs inside the timed loop.
pub trait RequestFactory: Send + Sync + 'static {
    /// The request to send.
    fn build(&self, conn: usize, n: u64) -> Request<Full<Bytes>>;
}

impl<F> RequestFactory for F
where
    F: Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    fn build(&self, conn: usize, n: u64) -> Request<Full<Bytes>> {
        self(conn, n)
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

fn count_status(statuses: &mut Vec<(u16, u64)>, s: StatusCode) {
    let code = s.as_u16();
    match statuses.iter_mut().find(|(c, _)| *c == code) {
        Some((_, n)) => *n += 1,
        None => statuses.push((code, 1)),
    }
}

async fn connect(target: SocketAddr) -> std::io::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
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
    let mut sender = match connect(plan.target).await {
        Ok(s) => s,
        Err(_) => {
            result.errors += 1;
            return result;
        }
    };
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let counted = measuring.load(Ordering::Relaxed);
        if counted && plan.max_requests.is_some() && budget.fetch_sub(1, Ordering::Relaxed) == 0 {
            budget.store(0, Ordering::Relaxed);
            break;
        }
        let req = factory.build(conn, n);
        n += 1;
        let started = Instant::now();
        let outcome = async {
            if sender.ready().await.is_err() {
                return None;
            }
            let resp = sender.send_request(req).await.ok()?;
            let status = resp.status();
            resp.into_body().collect().await.ok()?;
            Some(status)
        }
        .await;
        let elapsed = started.elapsed();
        if !counted {
            if outcome.is_none() {
                sender = match connect(plan.target).await {
                    Ok(s) => s,
                    Err(_) => break,
                };
            }
            continue;
        }
        result.requests += 1;
        match outcome {
            Some(status) => {
                count_status(&mut result.statuses, status);
                result.latencies.record(elapsed);
            }
            None => {
                result.errors += 1;
                sender = match connect(plan.target).await {
                    Ok(s) => s,
                    Err(_) => break,
                };
            }
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
        let seconds = started.elapsed().as_secs_f64();
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

/// A `POST` with a JSON body and extra headers.
#[must_use]
pub fn post_json(path: &str, host: &str, body: Bytes, headers: &[(&str, String)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(body)).unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
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
}
