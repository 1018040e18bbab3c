//! A real gRPC upstream (tonic) on loopback, serving `proto/echo.proto`: unary and
//! all three streaming shapes. `Unary` with message `fail` answers INVALID_ARGUMENT, so
//! tests can see an upstream's gRPC status travel back in trailers.

use std::net::SocketAddr;
use std::pin::Pin;

use futures::Stream;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// Generated messages, client and server for `gatehouse.test.echo`.
pub mod pb {
    tonic::include_proto!("gatehouse.test.echo");
}

use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

/// Replies streamed by `ServerStream` for each request.
pub const STREAM_REPLIES: usize = 3;

struct Service;

fn reply(message: String, metadata: &tonic::metadata::MetadataMap) -> EchoReply {
    let metadata = metadata
        .clone()
        .into_headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    EchoReply { message, metadata }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Service {
    async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let msg = req.get_ref().message.clone();
        if msg == "fail" {
            return Err(Status::invalid_argument("asked to fail"));
        }
        Ok(Response::new(reply(msg, req.metadata())))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        req: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let msg = req.get_ref().message.clone();
        let replies: Vec<_> = (0..STREAM_REPLIES)
            .map(|i| {
                Ok(EchoReply {
                    message: format!("{msg}-{i}"),
                    metadata: Default::default(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    async fn client_stream(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let metadata = req.metadata().clone();
        let mut stream = req.into_inner();
        let mut joined = Vec::new();
        while let Some(item) = stream.next().await {
            joined.push(item?.message);
        }
        Ok(Response::new(reply(joined.join(","), &metadata)))
    }

    type BidiStreamStream = ReplyStream;

    async fn bidi_stream(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let out = req.into_inner().map(|item| {
            item.map(|r| EchoReply {
                message: r.message,
                metadata: Default::default(),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}

/// A running gRPC server (h2c, prior knowledge); stops when dropped.
pub struct GrpcEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl GrpcEcho {
    /// Listen on `127.0.0.1:<random port>`.
    pub async fn start() -> GrpcEcho {
        let listener = crate::upstream::bind_loopback().await;
        let addr = listener.local_addr().expect("bound socket has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(EchoServer::new(Service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        GrpcEcho {
            addr,
            stop: Some(stop),
        }
    }
}

impl Drop for GrpcEcho {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client for `http://addr` (h2c through the proxy's plain listener).
pub async fn client(addr: SocketAddr) -> pb::echo_client::EchoClient<tonic::transport::Channel> {
    pb::echo_client::EchoClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC client connects")
}
