//! The access log: one JSON line per request (off, on, or a random sample), written
//! by a dedicated thread so a slow disk or pipe never stalls a worker.
//!
//! What is never written: tokens, codes, secrets, credentials of any kind. Request
//! headers are not logged (only the user agent); the query string of an `/oauth2/*`
//! request is dropped whole, and in other query strings the values of parameters that
//! carry credentials (`access_token`, `code`, `client_secret`...) are replaced.
//! The queue between workers and the writer is bounded; lines that do not fit are
//! counted (`gatehouse_proxy_access_log_dropped_total`) and dropped.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use rand::Rng as _;
use serde::Serialize;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// Longest client-chosen request id passed through; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// `X-Request-Id`: passed through when the client sent a sane one, else generated;
/// sent upstream and back to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Query parameters whose values are credentials (RFC 6749, RFC 7636, Kong).
const SENSITIVE_PARAMS: [&str; 12] = [
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "assertion",
    "provision_key",
    "password",
    "authenticated_userid",
];

/// How many requests are logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Off,
    On,
    /// Each request is logged with this probability (0 < p < 1).
    Sampled(f64),
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "on" => Ok(Mode::On),
            other => match other.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 1.0 => Ok(Mode::Sampled(p)),
                Ok(1.0) => Ok(Mode::On),
                Ok(0.0) => Ok(Mode::Off),
                _ => Err(format!(
                    "`{s}`: expected off, on, or a sampling ratio between 0 and 1"
                )),
            },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => f.write_str("off"),
            Mode::On => f.write_str("on"),
            Mode::Sampled(p) => write!(f, "{p}"),
        }
    }
}

/// One request, as logged.
#[derive(Debug, Default, Serialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch when the request arrived.
    pub ts_ms: u64,
    pub request_id: String,
    pub peer: String,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    /// Redacted query string; `None` for `/oauth2/*` requests and no query.
    pub query: Option<String>,
    pub protocol: &'static str,
    pub status: u16,
    pub route: Option<String>,
    /// `proxied`, `oauth2`, `upgraded`, or the refusal reason.
    pub outcome: &'static str,
    pub consumer: Option<String>,
    pub client_id: Option<String>,
    pub upstream: Option<String>,
    pub bytes_sent: u64,
    pub duration_ms: f64,
    pub upstream_ms: Option<f64>,
    pub user_agent: Option<String>,
}

/// The log's sending side, shared by every worker.
#[derive(Debug, Clone)]
pub struct AccessLog {
    mode: Mode,
    tx: Option<SyncSender<String>>,
    dropped: Counter,
}

/// Where lines go.
#[derive(Debug, Clone)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> AccessLog {
        AccessLog {
            mode: Mode::Off,
            tx: None,
            dropped: Counter::default(),
        }
    }

    /// Start the writer thread (unless `mode` is off). The file is opened for appending
    /// now so a wrong path fails start-up, not the first request.
    pub fn start(mode: Mode, to: Destination, dropped: Counter) -> std::io::Result<AccessLog> {
        if mode == Mode::Off {
            return Ok(AccessLog {
                dropped,
                ..AccessLog::off()
            });
        }
        let out: Box<dyn Write + Send> = match to {
            Destination::Stdout => Box::new(std::io::stdout()),
            Destination::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AccessLog {
            mode,
            tx: Some(tx),
            dropped,
        })
    }

    /// Whether this request is to be logged (draws the sample).
    pub fn wants(&self) -> bool {
        match self.mode {
            Mode::Off => false,
            Mode::On => true,
            Mode::Sampled(p) => rand::rng().random_bool(p),
        }
    }

    /// Queue `entry` for writing; never blocks.
    pub fn write(&self, entry: &Entry) {
        let Some(tx) = &self.tx else { return };
        let line = serde_json::to_string(entry).expect("an Entry is plain data");
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

fn write_lines(rx: mpsc::Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        // Write what else is queued, then flush once: lines reach the file promptly
        // without a syscall per line under load.
        while let Ok(line) = rx.try_recv() {
            ok &= writeln!(out, "{line}").is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            // Nowhere better to report it; tracing goes to stderr.
            tracing::warn!("Access log write failed");
        }
    }
}

/// The request id for a request: the client's when it is 1–128 visible characters
/// from a safe set, else 32 random hex digits.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(X_REQUEST_ID) {
        Some(v) if is_sane_request_id(v) => v.clone(),
        _ => new_request_id(),
    }
}

/// Give `headers` its request id ([`request_id`]) with one lookup, and return it.
pub fn set_request_id(headers: &mut HeaderMap) -> HeaderValue {
    match headers.entry(X_REQUEST_ID) {
        // The first value decides; only the id is kept (other values are dropped).
        http::header::Entry::Occupied(mut o) => {
            let id = if is_sane_request_id(o.get()) {
                o.get().clone()
            } else {
                new_request_id()
            };
            o.insert(id.clone());
            id
        }
        http::header::Entry::Vacant(v) => v.insert(new_request_id()).clone(),
    }
}

fn is_sane_request_id(v: &HeaderValue) -> bool {
    let bytes = v.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

fn new_request_id() -> HeaderValue {
    let id: u128 = rand::rng().random();
    // Hex by hand: `format!` costs more than the rest of the request id.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

/// `query` with the value of every credential-carrying parameter replaced.
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        let sensitive = SENSITIVE_PARAMS
            .iter()
            .any(|s| decoded.eq_ignore_ascii_case(s));
        if sensitive {
            out.push_str(name);
            out.push_str("=[redacted]");
        } else {
            out.push_str(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_parameters_are_redacted_whatever_their_spelling() {
        assert_eq!(
            redact_query("a=1&access_token=abc&b=2&Code=xyz&%63lient_secret=s"),
            "a=1&access_token=[redacted]&b=2&Code=[redacted]&%63lient_secret=[redacted]"
        );
        assert_eq!(redact_query("plain"), "plain");
        assert_eq!(redact_query("token"), "token=[redacted]");
    }

    #[test]
    fn modes_parse_from_the_command_line() {
        assert_eq!("off".parse::<Mode>().unwrap(), Mode::Off);
        assert_eq!("on".parse::<Mode>().unwrap(), Mode::On);
        assert_eq!("0.25".parse::<Mode>().unwrap(), Mode::Sampled(0.25));
        assert_eq!("1".parse::<Mode>().unwrap(), Mode::On);
        assert!("2".parse::<Mode>().is_err());
        assert!("sometimes".parse::<Mode>().is_err());
    }

    #[test]
    fn sane_request_ids_pass_through_and_others_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, "abc-123.x:y_z".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123.x:y_z");
        h.insert(X_REQUEST_ID, "has space".parse().unwrap());
        let generated = request_id(&h);
        assert_eq!(generated.len(), 32);
        h.insert(X_REQUEST_ID, "x".repeat(129).parse().unwrap());
        assert_ne!(request_id(&h), "x".repeat(129).as_str());
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
        assert!(request_id(&HeaderMap::new())
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn the_request_id_set_on_a_request_is_its_only_value() {
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, "first".parse().unwrap());
        h.append(X_REQUEST_ID, "second".parse().unwrap());
        assert_eq!(set_request_id(&mut h), "first");
        assert_eq!(h.get_all(X_REQUEST_ID).iter().count(), 1);
        h.insert(X_REQUEST_ID, "has space".parse().unwrap());
        let generated = set_request_id(&mut h);
        assert_eq!(generated.len(), 32);
        assert_eq!(h[X_REQUEST_ID], generated);
        let mut empty = HeaderMap::new();
        let generated = set_request_id(&mut empty);
        assert_eq!(empty[X_REQUEST_ID], generated);
    }

    #[test]
    fn lines_reach_the_file_and_nothing_is_written_when_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(
            Mode::On,
            Destination::File(path.clone()),
            Counter::default(),
        )
        .unwrap();
        assert!(log.wants());
        log.write(&Entry {
            path: "/x".into(),
            status: 200,
            ..Default::default()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Some(line) = text.lines().next() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["status"], 200);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!AccessLog::off().wants());
    }
}
