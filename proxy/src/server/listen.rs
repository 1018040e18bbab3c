//! Listening sockets shared by the workers through `SO_REUSEPORT`.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue per socket; large enough for connection bursts during
/// benchmarks and rolling restarts.
const BACKLOG: i32 = 1024;

/// Bind `count` sockets to `addr` with `SO_REUSEPORT` so each worker accepts on its
/// own. With port 0 the first socket picks the port and the others join it. Returns
/// the sockets (non-blocking) and the bound address.
pub fn bind_shared(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<(Vec<TcpListener>, SocketAddr)> {
    let first = bind_one(addr)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(bound)?);
    }
    Ok((sockets, bound))
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_sockets_all_share_the_chosen_port() {
        let (sockets, bound) = bind_shared("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(sockets.len(), 3);
        assert_ne!(bound.port(), 0);
        for s in &sockets {
            assert_eq!(s.local_addr().unwrap(), bound);
        }
    }
}
