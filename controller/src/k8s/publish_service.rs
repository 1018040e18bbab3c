//! `--publish-service NAMESPACE/NAME`: the proxy's Service, whose addresses become
//! served Ingresses' `status.loadBalancer` and Gateways' `status.addresses` (as
//! ingress-nginx's flag of the same name). Read from the Service cache on every pass,
//! so a load balancer that gets its address later is reported without a restart.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;

/// Parse `NAMESPACE/NAME`.
pub fn parse(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

/// Where clients reach `service`: its load balancer's addresses and external IPs; for
/// a Service that has neither (ClusterIP, NodePort, a load balancer still pending),
/// its cluster IP; for an ExternalName Service, that name. Sorted, without duplicates.
pub fn addresses(service: &Service) -> Vec<IngressLoadBalancerIngress> {
    let spec = service.spec.clone().unwrap_or_default();
    let mut ips: Vec<String> = Vec::new();
    let mut hostnames: Vec<String> = Vec::new();
    let balancers = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for i in balancers.into_iter().flatten() {
        ips.extend(i.ip.clone());
        hostnames.extend(i.hostname.clone());
    }
    ips.extend(spec.external_ips.into_iter().flatten());
    if ips.is_empty() && hostnames.is_empty() {
        match spec.type_.as_deref() {
            Some("ExternalName") => hostnames.extend(spec.external_name),
            _ => ips.extend(spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None")),
        }
    }
    ips.sort();
    ips.dedup();
    hostnames.sort();
    hostnames.dedup();
    let ip = ips.into_iter().map(|ip| IngressLoadBalancerIngress {
        ip: Some(ip),
        ..Default::default()
    });
    let host = hostnames
        .into_iter()
        .map(|hostname| IngressLoadBalancerIngress {
            hostname: Some(hostname),
            ..Default::default()
        });
    ip.chain(host).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    use super::*;

    fn service(type_: &str, cluster_ip: &str, balancers: &[(&str, &str)]) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: Some(cluster_ip.into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        balancers
                            .iter()
                            .map(|(ip, host)| LoadBalancerIngress {
                                ip: Some(ip.to_string()).filter(|s| !s.is_empty()),
                                hostname: Some(host.to_string()).filter(|s| !s.is_empty()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn shown(v: &[IngressLoadBalancerIngress]) -> Vec<String> {
        v.iter()
            .map(|i| i.ip.clone().or(i.hostname.clone()).unwrap())
            .collect()
    }

    #[test]
    fn a_load_balancer_reports_its_addresses_else_the_cluster_ip() {
        let lb = service(
            "LoadBalancer",
            "10.96.0.10",
            &[
                ("203.0.113.9", ""),
                ("", "lb.example.net"),
                ("203.0.113.7", ""),
            ],
        );
        assert_eq!(
            shown(&addresses(&lb)),
            ["203.0.113.7", "203.0.113.9", "lb.example.net"]
        );
        let pending = service("LoadBalancer", "10.96.0.10", &[]);
        assert_eq!(shown(&addresses(&pending)), ["10.96.0.10"]);
        let headless = service("ClusterIP", "None", &[]);
        assert!(addresses(&headless).is_empty());
    }

    #[test]
    fn the_flag_names_namespace_and_service() {
        assert_eq!(
            parse("gatehouse/gatehouse-proxy").unwrap(),
            ("gatehouse".to_owned(), "gatehouse-proxy".to_owned())
        );
        for bad in ["gatehouse-proxy", "/x", "x/", "a/b/c"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
