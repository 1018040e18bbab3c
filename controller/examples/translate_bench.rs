//! Times `translate` on 10,000 ProtectedRoutes + 10,000 OAuth2Clients (with their
//! consumers and credentials Secrets). Prints the median of a few runs; asserts
//! nothing about time.
//!
//! `cargo run --release -p gatehouse-controller --example translate_bench`

use std::sync::Arc;
use std::time::Instant;

use gatehouse_controller::translate::{translate, Input, Options};
use gatehouse_crds::*;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand::SeedableRng;

const N: usize = 10_000;

fn meta(name: String) -> ObjectMeta {
    ObjectMeta {
        namespace: Some("bench".into()),
        name: Some(name),
        ..ObjectMeta::default()
    }
}

fn input() -> Input {
    let mut input = Input::default();
    for i in 0..N {
        input.consumers.push(Arc::new(Consumer::new(
            &format!("consumer-{i}"),
            ConsumerSpec {
                username: Some(format!("user-{i}")),
                custom_id: None,
            },
        )));
        input.clients.push(Arc::new(OAuth2Client {
            metadata: meta(format!("client-{i}")),
            spec: OAuth2ClientSpec {
                consumer_ref: LocalRef {
                    name: format!("consumer-{i}"),
                },
                name: format!("App {i}"),
                redirect_uris: vec![format!("https://app-{i}.example/callback")],
                credentials_secret_ref: Some(LocalRef {
                    name: format!("creds-{i}"),
                }),
                ..OAuth2ClientSpec::default()
            },
            status: None,
        }));
        input.secrets.push(Arc::new(Secret {
            metadata: meta(format!("creds-{i}")),
            string_data: Some(
                [
                    ("client_id".to_owned(), format!("client-id-{i:08}")),
                    ("client_secret".to_owned(), format!("{i:0>40}")),
                ]
                .into(),
            ),
            ..Secret::default()
        }));
        input.routes.push(Arc::new(ProtectedRoute {
            metadata: meta(format!("route-{i}")),
            spec: ProtectedRouteSpec {
                paths: vec![format!("/api-{i}")],
                strip_path: true,
                backend: Some(Backend {
                    url: Some(format!("http://127.0.0.1:{}", 1024 + i)),
                    service: None,
                    protocol: None,
                    tls: None,
                }),
                oauth2: OAuth2Spec {
                    scopes: vec!["read".into(), "write".into()],
                    rules: vec![ScopeRule {
                        path: "/admin".into(),
                        methods: vec![Method::Post],
                        required_scopes: vec!["write".into()],
                    }],
                    ..OAuth2Spec::default()
                },
                ..ProtectedRouteSpec::default()
            },
            status: None,
        }));
    }
    // Consumer::new sets no namespace; put them where the clients look.
    for c in &mut input.consumers {
        Arc::get_mut(c).unwrap().metadata.namespace = Some("bench".into());
    }
    input
}

fn main() {
    let input = input();
    let options = Options::standalone(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = translate(&input, &options, &mut rng);
        let elapsed = start.elapsed();
        assert_eq!(out.snapshot.routes.len(), N);
        assert_eq!(out.snapshot.clients.len(), N);
        times.push(elapsed);
    }
    times.sort();
    println!(
        "translate: {N} routes + {N} clients + {N} consumers: median {:?} (min {:?}, max {:?}) over {} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
}
