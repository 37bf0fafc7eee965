//! One side of an HTTP connection, plain TCP or TLS (lbproxy as the TLS
//! server towards clients, as the TLS client towards backends), as one type
//! with `Read` and `Write`.
//!
//! The reactor is edge-triggered and takes a short read as "the socket is
//! drained" and a short write as "the send buffer is full". TLS keeps both
//! true: `read` goes on reading records until the caller's buffer is full or
//! the socket would block, and `write` takes no new bytes while encrypted
//! ones are still waiting for the socket. Those waiting bytes (and the
//! handshake's) are sent by `flush_tls`, which the connection calls first
//! whenever it is driven, so nothing stays behind when the caller has
//! nothing more to write.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Plaintext handed to rustls per `write` call, at most.
const WRITE_CHUNK: usize = 64 * 1024;

pub struct ClientIo {
    pub sock: TcpStream,
    tls: Option<Box<Connection>>,
}

impl ClientIo {
    pub fn plain(sock: TcpStream) -> ClientIo {
        ClientIo { sock, tls: None }
    }

    /// lbproxy as the TLS server (a client connection of a TLS frontend).
    pub fn tls(sock: TcpStream, config: &Arc<ServerConfig>) -> io::Result<ClientIo> {
        let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(ClientIo { sock, tls: Some(Box::new(Connection::Server(conn))) })
    }

    /// lbproxy as the TLS client (a connection to a backend), asking for
    /// `name`; the handshake starts with the first write once connected.
    pub fn tls_client(sock: TcpStream, config: &Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<ClientIo> {
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        Ok(ClientIo { sock, tls: Some(Box::new(Connection::Client(conn))) })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Encrypted bytes (handshake, records, alerts) wait for the socket.
    pub fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Send what TLS has waiting; `WouldBlock` if the socket took not all.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => flush(tls, &mut self.sock),
            None => Ok(()),
        }
    }

    /// Tell the client we are done (TLS close_notify); `flush_tls` sends it.
    pub fn close_notify(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
        }
    }

    /// No more bytes to the client: TLS close_notify (sent now if the
    /// socket takes it, else by the next `flush_tls`), or a TCP FIN.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => {
                tls.send_close_notify();
                flush_some(tls, &mut self.sock)
            }
            None => crate::connection::shutdown_write(&self.sock),
        }
    }

    /// The server name the client asked for (SNI), on a TLS connection.
    pub fn server_name(&self) -> Option<&str> {
        match self.tls.as_deref() {
            Some(Connection::Server(s)) => s.server_name(),
            _ => None,
        }
    }
}

fn flush(tls: &mut Connection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Flush, leaving what a full socket does not take for the next turn.
fn flush_some(tls: &mut Connection, sock: &mut TcpStream) -> io::Result<()> {
    match flush(tls, sock) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        r => r,
    }
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, e)
}

impl Read for ClientIo {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let ClientIo { sock, tls } = self;
        let Some(tls) = tls.as_mut() else { return sock.read(out) };
        let mut n = 0;
        loop {
            // Plaintext rustls has already decrypted comes first.
            match tls.reader().read(&mut out[n..]) {
                Ok(k) if k > 0 => {
                    n += k;
                    if n == out.len() {
                        return Ok(n);
                    }
                    continue;
                }
                // close_notify received: EOF (after what was read).
                Ok(_) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The TCP connection ended without close_notify: HTTP's own
                // framing tells whether anything was cut, so this is EOF.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return Err(e),
            }
            match tls.read_tls(sock) {
                // The end: rustls takes note, and its reader says so above.
                Ok(0) => {
                    tls.process_new_packets().map_err(invalid)?;
                }
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Best effort: the alert tells the client why.
                        let _ = flush(tls, sock);
                        return Err(invalid(e));
                    }
                    // Handshake answers go out as soon as they exist.
                    flush_some(tls, sock)?;
                }
                // Drained: a short read tells the caller so.
                Err(e) if e.kind() == ErrorKind::WouldBlock && n > 0 => return Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for ClientIo {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let ClientIo { sock, tls } = self;
        let Some(tls) = tls.as_mut() else { return sock.write(data) };
        // Older bytes first; none new while the socket is full.
        flush(tls, sock)?;
        let n = tls.writer().write(&data[..data.len().min(WRITE_CHUNK)])?;
        flush_some(tls, sock)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
