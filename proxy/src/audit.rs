//! The audit log: one JSON line per security event (tokens issued and refused, code
//! replay, refresh-token reuse, revocation, failed client authentication, rate
//! limits), written apart from the diagnostic log and the access log so it can be
//! shipped and kept on its own terms.
//!
//! What can be logged is fixed by the [`Event`] type: identifiers (route, client id,
//! user, family, peer address) and outcomes, never a token, code, secret or provision
//! key — none of those is a field of any event.
//!
//! Writing never blocks a request: lines go through a bounded queue to a writer thread;
//! when the queue is full the line is dropped and counted (a stuck disk must not stall
//! the data plane, and an unbounded queue would only move the problem to memory).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use serde::Serialize;

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUE_LINES: usize = 8192;

/// One security event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A token endpoint grant or an authorization succeeded.
    TokenIssued {
        client_id: &'a str,
        /// `authorization_code`, `refresh_token`, `client_credentials`, `password`,
        /// `code` (authorization code issued) or `implicit`.
        grant: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<&'a str>,
        scopes: &'a [String],
    },
    /// A grant or an authorization was refused.
    TokenRefused {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        grant: Option<&'a str>,
        /// The OAuth2 error code answered (`invalid_grant`, ...).
        error: &'a str,
        /// The error description answered.
        reason: &'a str,
    },
    /// An authorization code was presented a second time; its family was revoked.
    CodeReplay { client_id: &'a str, family: &'a str },
    /// A rotated-away refresh token was presented; its family was revoked.
    RefreshReuse { client_id: &'a str, family: &'a str },
    /// A refresh token was presented again within the route's grace window and got
    /// the pair its first presentation produced.
    RefreshGraceReplay { client_id: &'a str, family: &'a str },
    /// A token was revoked (RFC 7009).
    TokenRevoked { client_id: &'a str },
    /// A client failed to authenticate (unknown client, wrong secret, two methods).
    ClientAuthFailed {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        reason: &'a str,
    },
    /// A request was refused by a rate limit.
    RateLimited {
        /// `address` or `client`.
        limit: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        endpoint: &'a str,
        retry_after_secs: u64,
    },
    /// A client registered itself (RFC 7591).
    ClientRegistered {
        client_id: &'a str,
        redirect_uris: &'a [String],
    },
}

impl Event<'_> {
    /// The event's name as written in the `event` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::TokenIssued { .. } => "token_issued",
            Event::TokenRefused { .. } => "token_refused",
            Event::CodeReplay { .. } => "code_replay",
            Event::RefreshReuse { .. } => "refresh_reuse",
            Event::RefreshGraceReplay { .. } => "refresh_grace_replay",
            Event::TokenRevoked { .. } => "token_revoked",
            Event::ClientAuthFailed { .. } => "client_auth_failed",
            Event::RateLimited { .. } => "rate_limited",
            Event::ClientRegistered { .. } => "client_registered",
        }
    }
}

/// Where the audit log goes: `stderr` (default), `stdout`, `off`, or a file path
/// (appended to).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuditTarget {
    Off,
    #[default]
    Stderr,
    Stdout,
    File(PathBuf),
}

impl FromStr for AuditTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" => return Err("empty audit log target".into()),
            "off" => AuditTarget::Off,
            "stderr" | "-" => AuditTarget::Stderr,
            "stdout" => AuditTarget::Stdout,
            path => AuditTarget::File(PathBuf::from(path)),
        })
    }
}

impl fmt::Display for AuditTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditTarget::Off => f.write_str("off"),
            AuditTarget::Stderr => f.write_str("stderr"),
            AuditTarget::Stdout => f.write_str("stdout"),
            AuditTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A handle to the audit log; cheap to clone, shared by every worker.
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    inner: Option<Arc<Sink>>,
}

#[derive(Debug)]
struct Sink {
    tx: SyncSender<String>,
    dropped: AtomicU64,
}

/// The envelope every line shares.
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    route: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<IpAddr>,
    #[serde(flatten)]
    event: &'a Event<'a>,
}

impl AuditLog {
    /// An audit log that records nothing (tests, `--audit-log off`).
    pub fn off() -> Self {
        AuditLog { inner: None }
    }

    /// Open `target` and start its writer thread.
    pub fn open(target: &AuditTarget) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            AuditTarget::Off => return Ok(Self::off()),
            AuditTarget::Stderr => Box::new(io::stderr()),
            AuditTarget::Stdout => Box::new(io::stdout()),
            AuditTarget::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("audit log {}: {e}", path.display()))
                    })?,
            ),
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("gatehouse-audit".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AuditLog {
            inner: Some(Arc::new(Sink {
                tx,
                dropped: AtomicU64::new(0),
            })),
        })
    }

    /// Record `event` on `route` from `peer` (never blocks).
    pub fn record(&self, route: &str, peer: Option<IpAddr>, event: Event<'_>) {
        let Some(sink) = &self.inner else { return };
        let line = Line {
            ts: jiff::Timestamp::now().to_string(),
            route,
            peer,
            event: &event,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        match sink.tx.try_send(text) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = sink.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n + 1,
                        "Audit log lines dropped: the writer is behind"
                    );
                }
            }
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }
}

fn write_lines(rx: Receiver<String>, mut out: Box<dyn Write + Send>) {
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(line.as_bytes()).is_ok();
        // Write what else is queued, then flush once: a burst costs one flush.
        while let Ok(more) = rx.try_recv() {
            ok &= out.write_all(more.as_bytes()).is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::warn!("Audit log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn read_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<_> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn each_event_is_one_json_line_with_its_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&AuditTarget::File(path.clone())).unwrap();
        let scopes = vec!["read".to_string()];
        log.record(
            "default/api",
            Some("10.1.2.3".parse().unwrap()),
            Event::TokenIssued {
                client_id: "sfs",
                grant: "password",
                user: Some("clark"),
                scopes: &scopes,
            },
        );
        log.record(
            "default/api",
            None,
            Event::RateLimited {
                limit: "address",
                client_id: None,
                endpoint: "token",
                retry_after_secs: 2,
            },
        );
        let lines = read_lines(&path, 2);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "token_issued");
        assert_eq!(lines[0]["route"], "default/api");
        assert_eq!(lines[0]["peer"], "10.1.2.3");
        assert_eq!(lines[0]["client_id"], "sfs");
        assert_eq!(lines[0]["user"], "clark");
        assert_eq!(lines[0]["scopes"][0], "read");
        assert!(lines[0]["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["event"], "rate_limited");
        assert_eq!(lines[1]["retry_after_secs"], 2);
        assert!(lines[1].get("peer").is_none());
        assert!(lines[1].get("client_id").is_none());
    }

    #[test]
    fn event_names_match_the_serialized_tag() {
        let e = Event::RefreshReuse {
            client_id: "c",
            family: "f",
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], e.name());
    }

    #[test]
    fn targets_parse() {
        assert_eq!("off".parse(), Ok(AuditTarget::Off));
        assert_eq!("-".parse(), Ok(AuditTarget::Stderr));
        assert_eq!(
            "/var/log/a".parse(),
            Ok(AuditTarget::File("/var/log/a".into()))
        );
        assert!("".parse::<AuditTarget>().is_err());
        AuditLog::off().record("r", None, Event::TokenRevoked { client_id: "c" });
        assert_eq!(AuditLog::off().dropped(), 0);
    }
}
