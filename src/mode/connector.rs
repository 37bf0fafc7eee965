//! The one way a mode gets a backend connection: ask the frontend's policy
//! for a backend not tried yet, take an idle connection to it when the mode
//! keeps some (HTTP's pool), else start a non-blocking connect. A connect
//! refused at once counts against that backend, and the policy is asked
//! again without it; running out of descriptors is the proxy's own
//! condition and blames no backend. Picks go through the slow-start ramp
//! (`slow_start::pick`) in every mode; HTTP bounds its retries with a budget.

use std::io;

use mio::net::TcpStream;

use super::Ctx;
use crate::connection::is_descriptor_exhaustion;
use crate::policy::PickKey;
use crate::slow_start;

/// A backend connection to use.
pub enum Got<C> {
    /// An idle connection the mode kept, to backend `backend`.
    Reused { backend: usize, conn: C },
    /// A connect to backend `backend` in progress.
    Connecting { backend: usize, sock: TcpStream },
}

/// Why no backend connection could be had.
pub enum NoBackend {
    /// Every candidate was tried or none is up.
    NoneLeft,
    /// The proxy is out of descriptors.
    OutOfDescriptors(io::Error),
}

/// Pick and connect for `key`, skipping and extending `tried`; `idle` offers
/// a kept connection to a picked backend.
pub fn connect<C>(
    ctx: &mut Ctx,
    key: &PickKey,
    tried: &mut Vec<usize>,
    idle: impl FnMut(usize) -> Option<C>,
) -> Result<Got<C>, NoBackend> {
    connect_within(ctx, key, tried, idle, || true)
}

/// [`connect`], where every retry must first be allowed by `retry_ok` (a
/// retry budget); a refused one ends the attempt as if no backend were left.
pub fn connect_within<C>(
    ctx: &mut Ctx,
    key: &PickKey,
    tried: &mut Vec<usize>,
    mut idle: impl FnMut(usize) -> Option<C>,
    mut retry_ok: impl FnMut() -> bool,
) -> Result<Got<C>, NoBackend> {
    loop {
        let backend =
            slow_start::pick(&mut *ctx.policy, key, ctx.backends, tried, ctx.now).ok_or(NoBackend::NoneLeft)?;
        // A pick after a failed connect (here or reported later by the mode) is a retry.
        if !tried.is_empty() {
            if !retry_ok() {
                return Err(NoBackend::NoneLeft);
            }
            ctx.stats.retries += 1;
        }
        if let Some(conn) = idle(backend) {
            return Ok(Got::Reused { backend, conn });
        }
        match TcpStream::connect(ctx.backends[backend].addr) {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                return Ok(Got::Connecting { backend, sock });
            }
            Err(e) if is_descriptor_exhaustion(&e) => return Err(NoBackend::OutOfDescriptors(e)),
            Err(e) => {
                ctx.backends[backend].note_connect_failure(ctx.now, &e);
                tried.push(backend);
            }
        }
    }
}
