//! Listening sockets shared by the workers through `SO_REUSEPORT`.
//!
//! `SO_REUSEPORT` would also let any other process of the same user join the port and
//! take a share of its connections, so before the shared sockets are bound the
//! address is claimed once without it: that bind fails while anyone listens there.
//! (A program of the same user that sets `SO_REUSEPORT` itself can still join: the
//! kernel allows that; another user cannot.)

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
    let addr = claim(addr)?;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(bind_one(addr)?);
    }
    Ok((sockets, addr))
}

/// Bind `addr` without `SO_REUSEPORT` (fails with "address in use" when another
/// socket listens there, shared or not), release it, and return the address with
/// the port the kernel chose for port 0. A process that starts in the instant
/// between the release and our own bind could still join; two Gatehouse processes
/// started together are the only realistic case and one of them then fails on
/// its next restart.
fn claim(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR only skips TIME_WAIT leftovers; it never allows a second listener.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("bound address is not an IP address"))
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
    fn a_port_already_listened_on_is_not_shared() {
        let (_first, bound) = bind_shared("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let error = bind_shared(bound, 2).expect_err("second group must not join");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    }

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
