//! The Redis connection flags every command shares (`gatehouse proxy`, `standalone`
//! and `controller` flatten [`RedisArgs`]), and turning a Redis URL plus those flags
//! into a [`Target`]. One set, so the proxies and the controller cannot drift apart
//! (they once disagreed on the `--redis-timeout` default).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::conn::{ConnectOptions, Target};

/// How to reach Redis, whatever it is used for (tokens, the snapshot).
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// Redis ACL user name (overrides the URL's).
    #[arg(long, value_name = "USER", env = "GATEHOUSE_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// Redis password (overrides the URL's; prefer the environment variable so it
    /// does not show in the process list).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "GATEHOUSE_REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,

    /// PEM file with the CA certificate(s) to trust for rediss:// instead of the
    /// system trust store.
    #[arg(long, value_name = "PATH")]
    pub redis_ca_file: Option<PathBuf>,

    /// Prefix of every Redis key and channel Gatehouse uses (the controller's and the
    /// proxies' must match). In cluster mode, token keys get a per-family hash tag
    /// and the snapshot's key `{gatehouse}:config`, unless the prefix carries its own
    /// {hash tag}, which then pins every key to that slot.
    #[arg(long, value_name = "PREFIX", default_value = "gatehouse:")]
    pub redis_prefix: String,

    /// Bound on every Redis command and connection attempt: a proxy request that
    /// needs Redis answers 503 after it; the controller retries a failed publish.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub redis_timeout: Duration,
}

impl Default for RedisArgs {
    fn default() -> Self {
        RedisArgs {
            redis_username: None,
            redis_password: None,
            redis_ca_file: None,
            redis_prefix: "gatehouse:".into(),
            redis_timeout: Duration::from_secs(1),
        }
    }
}

impl RedisArgs {
    /// A target for a Redis URL (`redis://`, `rediss://`, `redis+sentinel://`, or
    /// comma-separated `redis://` URLs of Cluster seed nodes) with these credentials,
    /// CA and timeout.
    pub fn target_for(&self, url: &str) -> anyhow::Result<Target> {
        parse_target(url, self.connect_options()?)
    }

    /// Credentials, CA and timeout for every node of a target.
    pub fn connect_options(&self) -> anyhow::Result<ConnectOptions> {
        let ca_pem = match &self.redis_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading --redis-ca-file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(ConnectOptions {
            username: self.redis_username.clone(),
            password: self.redis_password.clone(),
            ca_pem,
            timeout: self.redis_timeout,
        })
    }
}

/// One URL, or a comma-separated list of `redis://` URLs meaning Cluster seed nodes.
pub fn parse_target(spec: &str, opts: ConnectOptions) -> anyhow::Result<Target> {
    let sentinel = spec.starts_with("redis+sentinel://") || spec.starts_with("rediss+sentinel://");
    if !sentinel && spec.contains(',') {
        let seeds: Vec<String> = spec.split(',').map(str::to_owned).collect();
        return Ok(Target::cluster(&seeds, opts)?);
    }
    Ok(Target::from_url(spec, opts)?)
}

/// `1s`, `500ms`, `2m`, `1h`, or a plain number of seconds (`0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 1s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        redis: RedisArgs,
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let parsed = Cli::try_parse_from(["gatehouse"])
            .expect("no flag is required")
            .redis;
        let default = RedisArgs::default();
        assert_eq!(parsed.redis_prefix, "gatehouse:");
        assert_eq!(parsed.redis_timeout, Duration::from_secs(1));
        assert_eq!(parsed.redis_prefix, default.redis_prefix);
        assert_eq!(parsed.redis_timeout, default.redis_timeout);
    }

    #[test]
    fn options_carry_credentials_and_timeout_to_every_target() {
        let args = Cli::try_parse_from([
            "gatehouse",
            "--redis-username",
            "u",
            "--redis-password",
            "pw",
            "--redis-timeout",
            "250ms",
        ])
        .unwrap()
        .redis;
        let opts = args.connect_options().unwrap();
        assert_eq!(opts.username.as_deref(), Some("u"));
        assert_eq!(opts.password.as_deref(), Some("pw"));
        assert_eq!(opts.timeout, Duration::from_millis(250));
        let target = args.target_for("redis://127.0.0.1:6380").unwrap();
        assert!(
            !target.describe().contains("pw"),
            "password must not be logged"
        );
        assert!(args
            .target_for("redis://127.0.0.1:7000,redis://127.0.0.1:7001")
            .unwrap()
            .is_cluster());
    }

    #[test]
    fn an_unreadable_ca_file_is_an_error() {
        let args = RedisArgs {
            redis_ca_file: Some("/nonexistent/ca.pem".into()),
            ..RedisArgs::default()
        };
        let err = args.target_for("rediss://127.0.0.1").unwrap_err();
        assert!(format!("{err:#}").contains("--redis-ca-file"), "{err:#}");
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
