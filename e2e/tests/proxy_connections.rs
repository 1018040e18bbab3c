//! Connection hardening of the real `gatehouse proxy` process: silent and slow clients
//! cannot exhaust it (a low open-files limit included), idle connections are closed
//! after their timeouts, and a port it serves cannot be shared by a second process.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::upstream::TestUpstream;

const STARTUP: Duration = Duration::from_secs(60);

/// `examples/snapshot.json` with every upstream pointed at `upstream`.
fn write_snapshot(dir: &Path, upstream: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshot.json"),
    )
    .unwrap();
    let mut snapshot: serde_json::Value = serde_json::from_str(&text).unwrap();
    for route in snapshot["routes"].as_array_mut().unwrap() {
        route["upstream"]["endpoints"] = serde_json::json!([upstream]);
    }
    let path = dir.join("snapshot.json");
    std::fs::write(&path, snapshot.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn start(
    upstream: &TestUpstream,
    dir: &Path,
    nofile: Option<u64>,
    extra: &[&str],
) -> (Gatehouse, SocketAddr) {
    let listen = free_addr();
    let file = write_snapshot(dir, &upstream.url());
    let mut args = vec![
        "proxy".to_owned(),
        "--config-file".to_owned(),
        file,
        "--listen".to_owned(),
        listen.to_string(),
        "--workers".to_owned(),
        "1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut proc = match nofile {
        Some(n) => Gatehouse::spawn_with_open_files_limit(n, &args),
        None => Gatehouse::spawn(&args),
    }
    .unwrap();
    proc.wait_for_port(listen, STARTUP).await.unwrap();
    (proc, listen)
}

/// Read until the server closes; returns what it sent and how long that took.
fn read_to_close(mut stream: TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (out, start.elapsed())
            }
            Err(e) => panic!(
                "connection still open after {:?} ({e}); got {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

fn closed_by_server(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_silent_connections_under_a_low_open_files_limit_leave_requests_answered() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    // 256 descriptors: the default cap becomes (256 - 64) / 2 = 96 client connections.
    // Timeouts are long so that only the cap can be what keeps the proxy answering.
    let (proc, listen) = start(
        &up,
        dir.path(),
        Some(256),
        &["--header-timeout", "300", "--idle-timeout", "300"],
    )
    .await;

    let silent: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(listen).expect("the kernel queues the connection"))
        .collect();
    // Let the proxy accept (and shed) them.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..20 {
        let resp = client
            .get(format!("http://{listen}/public/{i}"))
            .header("host", "localhost")
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}; log:\n{}", proc.log()));
        assert_eq!(resp.status(), 200, "request {i}; log:\n{}", proc.log());
    }

    let closed = silent.iter().filter(|s| closed_by_server(s)).count();
    assert!(
        closed >= 400 - 96,
        "only {closed} of 400 silent connections were closed; log:\n{}",
        proc.log()
    );
    assert!(
        proc.log().contains("Connection limit reached"),
        "the cap is logged; log:\n{}",
        proc.log()
    );
    // Rate-limited: one line for hundreds of evictions.
    assert_eq!(proc.log().matches("Connection limit reached").count(), 1);
}

// Multi-thread: the test reads with blocking sockets while the echo upstream runs on
// the same runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_http1_clients_are_cut_off_after_the_timeouts() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (proc, listen) = start(
        &up,
        dir.path(),
        None,
        &[
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
            "--body-min-rate",
            "1024",
        ],
    )
    .await;
    let limit = Duration::from_secs(6);

    // Never a byte: closed after the header timeout.
    let (_, took) = read_to_close(TcpStream::connect(listen).unwrap(), limit);
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // Slowloris head: a header line every 300 ms never completes in time.
    let mut slow = TcpStream::connect(listen).unwrap();
    slow.write_all(b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let writer = {
        let mut slow = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for i in 0..20 {
                std::thread::sleep(Duration::from_millis(300));
                if slow
                    .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let (_, took) = read_to_close(slow, limit);
    assert!(took < Duration::from_secs(3), "{took:?}");
    writer.join().unwrap();

    // Slow body the proxy reads itself (form token lookup): 408 once it is too slow.
    let mut body = TcpStream::connect(listen).unwrap();
    body.write_all(
        b"POST /stepon/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\na=",
    )
    .unwrap();
    let start = Instant::now();
    let (answer, _) = read_to_close(body, limit);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(start.elapsed() >= Duration::from_millis(800));

    // Idle keep-alive: one request answered, then the connection closes by itself.
    let mut idle = TcpStream::connect(listen).unwrap();
    idle.write_all(b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (answer, took) = read_to_close(idle, limit);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // None of this hurt anyone else.
    let resp = reqwest::Client::new()
        .get(format!("http://{listen}/public/ok"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", proc.log());
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_the_idle_timeout() {
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (proc, listen) = start(&up, dir.path(), None, &["--idle-timeout", "1"]).await;

    let stream = tokio::net::TcpStream::connect(listen).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://localhost:{}/public/h2", listen.port()))
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();

    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the proxy closes the idle HTTP/2 connection; log:\n{}",
                proc.log()
            )
        })
        .unwrap()
        .ok();
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_second_process_cannot_listen_on_a_port_gatehouse_serves() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (_first, listen) = start(&up, dir.path(), None, &[]).await;

    let file = write_snapshot(dir.path(), &up.url());
    let mut second = Gatehouse::spawn([
        "proxy",
        "--config-file",
        &file,
        "--listen",
        &listen.to_string(),
        "--workers",
        "2",
    ])
    .unwrap();
    let exit = second.wait_exit(STARTUP).await.unwrap();
    assert!(!exit.success(), "log:\n{}", second.log());
    assert!(
        second.log().contains(&format!("cannot listen on {listen}")),
        "{}",
        second.log()
    );
}
