//! Flags of `gatehouse controller`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gatehouse_config::redis::args::{parse_duration, RedisArgs};

/// `gatehouse controller`: watch the cluster, publish snapshots to Redis, report status.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Kubeconfig file to use instead of the in-cluster service account or
    /// `$KUBECONFIG` / `~/.kube/config` (its current context).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NS", env = "GATEHOUSE_NAMESPACE")]
    pub namespace: Option<String>,

    /// Redis to publish the proxy snapshot to: `redis://[user:pass@]host[:port][/db]`,
    /// `rediss://...`, `redis+sentinel://host:port[,host:port]/master[/db]`, or
    /// comma-separated `redis://` URLs of Redis Cluster seed nodes.
    #[arg(long, value_name = "URL", env = "GATEHOUSE_REDIS")]
    pub redis: String,

    /// Credentials, CA, key prefix (must match the proxies') and timeout: the same
    /// flags and defaults as the proxies'.
    #[command(flatten)]
    pub redis_conn: RedisArgs,

    /// Instance name, like an ingress class: handle only resources labelled
    /// `gatehouse.dev/instance=<NAME>`. Without it, only resources without that label
    /// are handled. Lets two installations share a cluster.
    #[arg(long, value_name = "NAME", env = "GATEHOUSE_INSTANCE")]
    pub instance: Option<String>,

    /// Name of the coordination.k8s.io Lease used for leader election
    /// (default: `gatehouse-controller`, or `gatehouse-controller-<instance>`).
    #[arg(long, value_name = "NAME")]
    pub lease_name: Option<String>,

    /// Namespace of the Lease (default: the pod's namespace from `POD_NAMESPACE`,
    /// else `default`).
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "default"
    )]
    pub lease_namespace: String,

    /// This replica's identity in the Lease (default: `$POD_NAME` or `$HOSTNAME`, plus
    /// a random suffix).
    #[arg(long, value_name = "ID")]
    pub lease_identity: Option<String>,

    /// How long the Lease stays valid after the leader's last renewal; a standby takes
    /// over after that when the leader dies without releasing it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// The leader stops writing when it could not renew the Lease for this long
    /// (shorter than --lease-duration).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,

    /// Interval between Lease acquire/renew attempts.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,

    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,

    /// Wait this long after a change for more changes before re-translating.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    pub debounce: Duration,

    /// Re-translate, re-check every status and re-read unlabelled referenced Secrets
    /// this often even without changes (repairs drift).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub resync: Duration,

    /// How often a referenced Secret that does not exist is looked for again (only
    /// Secrets without the `gatehouse.dev/credentials` label; labelled ones are
    /// watched).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub missing_secret_retry: Duration,

    /// Bound on each Kubernetes write.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// How many Kubernetes writes run at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub write_concurrency: usize,

    /// File holding the installation's login key (the same Secret the proxies mount):
    /// seals `oauth2.login` client secrets into the snapshot.
    #[arg(long, value_name = "PATH", env = "GATEHOUSE_LOGIN_KEY_FILE")]
    pub login_key_file: Option<PathBuf>,

    /// Ingress class served (`ingressClassName`, or the legacy annotation).
    #[arg(long, value_name = "NAME", default_value = crate::translate::DEFAULT_INGRESS_CLASS)]
    pub ingress_class: String,

    /// Address written to served Ingresses' `status.loadBalancer` (the proxy Service's
    /// external IP or host name); repeat for several.
    #[arg(long, value_name = "IP|HOST", conflicts_with = "publish_service")]
    pub ingress_status_address: Vec<String>,

    /// The proxy's Service (`NAMESPACE/NAME`): its addresses (load balancer, external
    /// IPs, else cluster IP) are written to served Ingresses' `status.loadBalancer` and
    /// Gateways' `status.addresses`, following it as it changes.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = super::publish_service::parse)]
    pub publish_service: Option<(String, String)>,

    /// While the Gateway API CRDs are not installed, check again this often; once they
    /// are, their kinds are watched (no restart needed).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub gateway_api_recheck: Duration,

    /// GatewayClass served without reading it, when this controller may not read
    /// GatewayClasses (`--namespace`, or no RBAC on them); empty: serve no Gateway then.
    #[arg(long, value_name = "NAME", default_value = "gatehouse")]
    pub gateway_class: String,
}

impl ControllerArgs {
    /// The Lease name to use.
    pub fn lease_name(&self) -> String {
        match (&self.lease_name, &self.instance) {
            (Some(name), _) => name.clone(),
            (None, Some(instance)) => format!("gatehouse-controller-{instance}"),
            (None, None) => "gatehouse-controller".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(argv: &[&str]) -> ControllerArgs {
        let mut all = vec!["gatehouse"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("valid flags").args
    }

    #[test]
    fn defaults_need_only_redis() {
        let a = parse(&["--redis", "redis://127.0.0.1"]);
        assert_eq!(a.debounce, Duration::from_millis(250));
        assert_eq!(a.redis_conn.redis_prefix, "gatehouse:");
        assert_eq!(a.redis_conn.redis_timeout, Duration::from_secs(1));
        assert_eq!(a.lease_name(), "gatehouse-controller");
        assert!(a.namespace.is_none());
    }

    #[test]
    fn an_instance_gets_its_own_lease_by_default() {
        let a = parse(&["--redis", "redis://r", "--instance", "blue"]);
        assert_eq!(a.lease_name(), "gatehouse-controller-blue");
        let b = parse(&[
            "--redis",
            "redis://r",
            "--instance",
            "blue",
            "--lease-name",
            "x",
        ]);
        assert_eq!(b.lease_name(), "x");
    }
}
