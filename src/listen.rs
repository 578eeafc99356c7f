//! Listening sockets for both tiny_http servers, with read and write timeouts.
//!
//! tiny_http 0.12 sets no timeout on its connections, so a client that stops sending in the
//! middle of a request head or body, or stops reading a response, holds a thread for ever. On
//! Linux an accepted socket inherits `SO_RCVTIMEO` and `SO_SNDTIMEO` from the listening one, so
//! setting them here bounds every connection: tiny_http answers a stalled head with 408 and
//! closes, a stalled body read fails, and an idle keep-alive connection is closed.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Binds `addr` and sets `timeout` as the read and write timeout of every connection accepted.
pub fn bind(addr: SocketAddr, timeout: Duration) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // The socket options live on the descriptor; a TcpStream view of it is how std sets them.
    let socket = TcpStream::from(OwnedFd::from(listener));
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    Ok(TcpListener::from(OwnedFd::from(socket)))
}

/// A tiny_http server on `addr` whose connections time out after `timeout`.
pub fn server(addr: SocketAddr, timeout: Duration) -> io::Result<tiny_http::Server> {
    let listener = bind(addr, timeout)?;
    tiny_http::Server::from_listener(listener, None)
        .map_err(|e| io::Error::new(io::ErrorKind::AddrInUse, format!("{addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn accepted_connections_inherit_the_read_timeout() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(200)).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        let started = std::time::Instant::now();
        let mut byte = [0u8; 1];
        let error = accepted.read(&mut byte).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
