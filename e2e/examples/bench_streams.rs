//! The WebSocket and gRPC side of `bench/run` (cases i–l), where wrk cannot go:
//!
//! - `bench_streams serve PORTFILE`: a real WebSocket echo server and a real gRPC echo
//!   server (tonic) on loopback ports chosen here, written to PORTFILE as
//!   `ws=PORT grpc=PORT`; runs until killed.
//! - `bench_streams ws URL SECONDS CONNECTIONS REPORT [HEADER...]`: CONNECTIONS
//!   WebSocket connections, each sending a 16-byte binary message and waiting for its
//!   echo, again and again for SECONDS.
//! - `bench_streams grpc URL SECONDS CONNECTIONS REPORT [HEADER...]`: CONNECTIONS
//!   HTTP/2 connections, each making one unary call after the other for SECONDS.
//! - `ws`/`grpc` with SECONDS `0`: one exchange, exit status 0 only if it succeeded
//!   (bench/run's check that a case answers before it is measured).
//!
//! HEADER is `name: value` (sent with the WebSocket handshake or every call). REPORT
//! gets the `key value` lines `bench/wrk/report.lua` writes, so both kinds of case are
//! aggregated the same way: one request is one echoed message or one unary call.
//! Single-threaded, like `wrk -t1`.
//!
//! `cargo run --release -p gatehouse-e2e --example bench_streams -- serve /tmp/ports`

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::{SinkExt, StreamExt};
use gatehouse_e2e::grpc::pb::echo_client::EchoClient;
use gatehouse_e2e::grpc::pb::EchoRequest;
use gatehouse_e2e::grpc::GrpcEcho;
use gatehouse_e2e::websocket::{self, WsEcho};
use tokio_tungstenite::tungstenite::Message;

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// Microseconds per exchange.
    latencies: Vec<u32>,
    /// The peer refused (handshake status, gRPC status).
    status_errors: u64,
    /// The connection failed.
    socket_errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("serve") => {
            let file = args.get(1).context("serve PORTFILE")?;
            rt.block_on(serve(file))
        }
        Some(kind @ ("ws" | "grpc")) => {
            let Some([url, seconds, connections, report]) = args.get(1..5) else {
                bail!("{kind} URL SECONDS CONNECTIONS REPORT [HEADER...]");
            };
            let headers = args[5..]
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                        .with_context(|| format!("header {h:?} is not `name: value`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let seconds: u64 = seconds.parse().context("SECONDS")?;
            let connections: usize = connections.parse().context("CONNECTIONS")?;
            rt.block_on(load(kind, url, seconds, connections.max(1), &headers, report))
        }
        _ => bail!("usage: bench_streams serve PORTFILE | ws|grpc URL SECONDS CONNECTIONS REPORT [HEADER...]"),
    }
}

async fn serve(file: &str) -> anyhow::Result<()> {
    let ws = WsEcho::start().await;
    let grpc = GrpcEcho::start().await;
    let tmp = format!("{file}.tmp");
    std::fs::write(
        &tmp,
        format!("ws={} grpc={}\n", ws.addr.port(), grpc.addr.port()),
    )?;
    std::fs::rename(&tmp, file)?;
    std::future::pending::<()>().await;
    Ok(())
}

async fn load(
    kind: &str,
    url: &str,
    seconds: u64,
    connections: usize,
    headers: &[(String, String)],
    report: &str,
) -> anyhow::Result<()> {
    let once = seconds == 0;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..if once { 1 } else { connections })
        .map(|_| {
            let (kind, url, headers) = (kind.to_owned(), url.to_owned(), headers.to_vec());
            // A current-thread runtime: every connection shares this one thread.
            tokio::spawn(async move {
                if kind == "ws" {
                    ws_connection(&url, &headers, deadline, once).await
                } else {
                    grpc_connection(&url, &headers, deadline, once).await
                }
            })
        })
        .collect();
    let tallies = futures::future::join_all(tasks).await;
    let elapsed = started.elapsed();
    let mut all = Tally::default();
    for t in tallies {
        let t = t.context("a load task panicked")?;
        all.latencies.extend(t.latencies);
        all.status_errors += t.status_errors;
        all.socket_errors += t.socket_errors;
    }
    if once {
        if all.latencies.len() == 1 && all.status_errors + all.socket_errors == 0 {
            return Ok(());
        }
        bail!(
            "{kind} {url}: the exchange failed ({} refused, {} connection errors)",
            all.status_errors,
            all.socket_errors
        );
    }
    std::fs::write(report, render(&mut all, elapsed))?;
    Ok(())
}

/// The report in `bench/wrk/report.lua`'s format.
fn render(t: &mut Tally, elapsed: Duration) -> String {
    t.latencies.sort_unstable();
    let n = t.latencies.len();
    let pct = |p: f64| -> u32 {
        if n == 0 {
            return 0;
        }
        t.latencies[(((n as f64) * p / 100.0).ceil() as usize).clamp(1, n) - 1]
    };
    let mean = if n == 0 {
        0.0
    } else {
        t.latencies.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64
    };
    let lines = [
        ("requests", n.to_string()),
        ("duration_us", elapsed.as_micros().to_string()),
        ("bytes", "0".into()),
        ("err_connect", "0".into()),
        ("err_read", t.socket_errors.to_string()),
        ("err_write", "0".into()),
        ("err_status", t.status_errors.to_string()),
        ("err_timeout", "0".into()),
        ("lat_mean_us", format!("{mean:.1}")),
        (
            "lat_max_us",
            t.latencies.last().copied().unwrap_or(0).to_string(),
        ),
        ("p50_us", pct(50.0).to_string()),
        ("p90_us", pct(90.0).to_string()),
        ("p99_us", pct(99.0).to_string()),
        ("p999_us", pct(99.9).to_string()),
    ];
    lines.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

fn micros(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)
}

async fn ws_connection(
    url: &str,
    headers: &[(String, String)],
    deadline: Instant,
    once: bool,
) -> Tally {
    let mut tally = Tally::default();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut ws = match websocket::connect(url, &pairs).await {
        Ok(ws) => ws,
        Err(refused) => {
            eprintln!("ws {url}: upgrade refused with {}", refused.status());
            tally.status_errors += 1;
            return tally;
        }
    };
    let payload = vec![0x5a_u8; 16];
    loop {
        let t = Instant::now();
        if ws.send(Message::binary(payload.clone())).await.is_err() {
            tally.socket_errors += 1;
            break;
        }
        match ws.next().await {
            Some(Ok(Message::Binary(echo))) if echo.as_ref() == payload.as_slice() => {
                tally.latencies.push(micros(t));
            }
            other => {
                eprintln!("ws {url}: expected the echo, got {other:?}");
                tally.socket_errors += 1;
                break;
            }
        }
        if once || Instant::now() >= deadline {
            let _ = ws.close(None).await;
            break;
        }
    }
    tally
}

async fn grpc_connection(
    url: &str,
    headers: &[(String, String)],
    deadline: Instant,
    once: bool,
) -> Tally {
    let mut tally = Tally::default();
    let channel = match tonic::transport::Endpoint::from_shared(url.to_owned()) {
        Ok(endpoint) => endpoint.connect().await,
        Err(e) => {
            eprintln!("grpc {url}: {e}");
            tally.socket_errors += 1;
            return tally;
        }
    };
    let mut client = match channel {
        Ok(channel) => EchoClient::new(channel),
        Err(e) => {
            eprintln!("grpc {url}: {e}");
            tally.socket_errors += 1;
            return tally;
        }
    };
    let metadata: Vec<_> = headers
        .iter()
        .filter_map(|(n, v)| {
            let name = tonic::metadata::MetadataKey::from_bytes(n.to_lowercase().as_bytes());
            let value: tonic::metadata::AsciiMetadataValue = v.parse().ok()?;
            Some((name.ok()?, value))
        })
        .collect();
    loop {
        let mut req = tonic::Request::new(EchoRequest {
            message: "bench".into(),
        });
        for (name, value) in &metadata {
            req.metadata_mut().insert(name.clone(), value.clone());
        }
        let t = Instant::now();
        match client.unary(req).await {
            Ok(reply) if reply.get_ref().message == "bench" => tally.latencies.push(micros(t)),
            Ok(_) => {
                tally.status_errors += 1;
                break;
            }
            Err(status) => {
                eprintln!("grpc {url}: {status}");
                // A transport failure has no gRPC status of its own: tonic reports it
                // as UNKNOWN/UNAVAILABLE with a source error.
                if std::error::Error::source(&status).is_some() {
                    tally.socket_errors += 1;
                } else {
                    tally.status_errors += 1;
                }
                break;
            }
        }
        if once || Instant::now() >= deadline {
            break;
        }
    }
    tally
}
