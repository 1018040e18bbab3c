//! WebSocket upgrades and gRPC (HTTP/2 upstreams) through the proxy, end to end with
//! real peers: a tokio-tungstenite echo server and client, a tonic server and client.

mod proxy_support;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use gatehouse_e2e::grpc::{self, pb, GrpcEcho, STREAM_REPLIES};
use gatehouse_e2e::websocket::{self, WsEcho};
use gatehouse_proxy::config::{Route, ScopeRule};
use gatehouse_proxy::store::memory::MemoryStore;
use proxy_support::*;
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;

const GOOD: &str = "good-token-for-ws-and-grpc";

async fn store_with_token(route_id: &str, scopes: &[&str]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new(100));
    issue(
        store.as_ref(),
        GOOD,
        mk_token(route_id, scopes, Some(now() + 3600)),
    )
    .await;
    store
}

fn protected(id: &str, path: &str, endpoint: String, tweak: impl FnOnce(&mut Route)) -> Route {
    let mut route = mk_route(id, &[path], &[endpoint]);
    route.oauth2 = Some(mk_oauth());
    tweak(&mut route);
    route
}

// ---------------------------------------------------------------- WebSocket

#[tokio::test]
async fn websockets_are_proxied_after_the_token_check_with_credentials_hidden() {
    let up = WsEcho::start().await;
    let route = protected("default/ws", "/ws", up.url(), |r| {
        r.oauth2.as_mut().unwrap().hide_credentials = true;
    });
    let store = store_with_token("default/ws", &[]).await;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store).await;
    let url = format!("ws://{}/ws/chat?room=1", proxy.addr);

    // No token: the handshake is refused before the upstream is involved.
    let refused = websocket::connect(&url, &[]).await.unwrap_err();
    assert_eq!(refused.status(), 401);
    assert!(up.handshakes().is_empty());

    let mut ws = websocket::connect(&url, &[("authorization", &format!("Bearer {GOOD}"))])
        .await
        .expect("upgrade through the proxy");
    for text in ["hello", "second message"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back, Message::text(text));
    }
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));

    let handshakes = up.handshakes();
    assert_eq!(handshakes.len(), 1);
    let (target, headers) = &handshakes[0];
    assert_eq!(target, "/ws/chat?room=1");
    assert!(
        headers.get("authorization").is_none(),
        "hide_credentials applies"
    );
    assert_eq!(headers["x-consumer-id"], "default/shoeflyshoe");
    assert!(headers.get("x-request-id").is_some());

    // The upstream closing ends the tunnel for the client.
    ws.send(Message::text("close")).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "close reached the client");
}

#[tokio::test]
async fn a_silent_websocket_is_closed_after_the_idle_timeout() {
    let up = WsEcho::start().await;
    let mut route = mk_route("default/ws", &["/ws"], &[up.url()]);
    route.timeouts.idle_ms = Some(300);
    let proxy = Proxy::start(mk_snapshot(vec![route]), Arc::new(MemoryStore::new(10))).await;
    let mut ws = websocket::connect(&format!("ws://{}/ws", proxy.addr), &[])
        .await
        .unwrap();
    // Traffic more often than the timeout keeps it open.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
    }
    // Then silence: the proxy cuts both sides.
    let ended = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    match ended.expect("the proxy closed the idle tunnel") {
        None | Some(Err(_)) => {}
        Some(Ok(msg)) => assert!(msg.is_close(), "unexpected {msg:?}"),
    }
}

// ---------------------------------------------------------------- gRPC

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {GOOD}").parse().unwrap());
    req
}

fn echo(message: &str) -> pb::EchoRequest {
    pb::EchoRequest {
        message: message.into(),
    }
}

#[tokio::test]
async fn grpc_unary_and_streaming_calls_pass_through_an_h2c_upstream() {
    let up = GrpcEcho::start().await;
    let route = protected(
        "default/grpc",
        "/gatehouse.test.echo.Echo",
        format!("grpc://{}", up.addr),
        |_| {},
    );
    let store = store_with_token("default/grpc", &[]).await;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store).await;
    let mut client = grpc::client(proxy.addr).await;

    let reply = client.unary(authed(echo("hi"))).await.unwrap().into_inner();
    assert_eq!(reply.message, "hi");
    assert_eq!(reply.metadata["x-consumer-id"], "default/shoeflyshoe");
    assert_eq!(
        reply.metadata.get("te").map(String::as_str),
        Some("trailers")
    );

    // An upstream error status travels back in the trailers.
    let status = client.unary(authed(echo("fail"))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "asked to fail");

    let mut stream = client
        .server_stream(authed(echo("s")))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        got.push(item.message);
    }
    assert_eq!(got.len(), STREAM_REPLIES);
    assert_eq!(got[0], "s-0");

    let outbound = tokio_stream::iter(vec![echo("a"), echo("b"), echo("c")]);
    let joined = client
        .client_stream(authed(outbound))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.message, "a,b,c");

    // Bidirectional: each reply arrives before the next request is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .bidi_stream(authed(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    for word in ["one", "two", "three"] {
        tx.send(echo(word)).await.unwrap();
        assert_eq!(replies.message().await.unwrap().unwrap().message, word);
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
}

#[tokio::test]
async fn grpc_clients_get_grpc_status_codes_for_the_proxys_own_refusals() {
    let up = GrpcEcho::start().await;
    let with_rule = protected(
        "default/grpc",
        "/gatehouse.test.echo.Echo",
        format!("grpc://{}", up.addr),
        |r| {
            r.oauth2.as_mut().unwrap().rules = vec![ScopeRule {
                path: "/ServerStream".into(),
                methods: vec![],
                required_scopes: vec!["stream".into()],
            }];
        },
    );
    let mut down = mk_route("default/down", &["/gatehouse.test.echo.Down"], &[]);
    down.upstream.protocol = gatehouse_proxy::config::UpstreamProtocol::H2c;
    let store = store_with_token("default/grpc", &[]).await;
    let proxy = Proxy::start(mk_snapshot(vec![with_rule, down]), store).await;
    let mut client = grpc::client(proxy.addr).await;

    let missing = client.unary(echo("x")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    let mut bad = tonic::Request::new(echo("x"));
    bad.metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        client.unary(bad).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let scope = client.server_stream(authed(echo("x"))).await.unwrap_err();
    assert_eq!(scope.code(), Code::PermissionDenied, "{scope:?}");

    // A route with no endpoint: UNAVAILABLE. (Called through a raw gRPC path, since
    // the generated client only knows the Echo service.)
    let mut grpc = tonic::client::Grpc::new(
        tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/gatehouse.test.echo.Down/Unary");
    let status = grpc
        .unary::<_, pb::EchoReply, _>(
            tonic::Request::new(echo("x")),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
