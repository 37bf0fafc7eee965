//! The one way a mode gets a backend connection: ask the frontend's policy
//! for a backend not tried yet, take an idle connection to it when the mode
//! keeps some (HTTP's pool), else start a non-blocking connect. A connect
//! refused at once counts against that backend, and the policy is asked
//! again without it; running out of descriptors is the proxy's own
//! condition and blames no backend. Picks go through the slow-start ramp
//! (`slow_start::pick`) in every mode; HTTP bounds its retries with a budget.
//! The pick is counted (a [`Claim`]) here, at once, and handed to the mode:
//! under bounded loads the cap is checked again with it counted, which is
//! what keeps the cap when several workers pick at the same moment.

use std::io;

use mio::net::TcpStream;

use super::Ctx;
use crate::backend::Claim;
use crate::connection::is_descriptor_exhaustion;
use crate::policy::{Candidates, PickKey, Policy, bounded_load};
use crate::slow_start;

/// A backend connection to use, and the claim counting it on its backend.
pub enum Got<C> {
    /// An idle connection the mode kept, to backend `backend`.
    Reused { backend: usize, conn: C, claim: Claim },
    /// A connect to backend `backend` in progress.
    Connecting { backend: usize, sock: TcpStream, claim: Claim },
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
        let (backend, claim) = pick_counted(ctx, key, tried).ok_or(NoBackend::NoneLeft)?;
        // A pick after a failed connect (here or reported later by the mode) is a retry.
        if !tried.is_empty() {
            if !retry_ok() {
                return Err(NoBackend::NoneLeft);
            }
            ctx.stats.retries += 1;
        }
        if let Some(conn) = idle(backend) {
            return Ok(Got::Reused { backend, conn, claim });
        }
        match TcpStream::connect(ctx.backends[backend].addr) {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                return Ok(Got::Connecting { backend, sock, claim });
            }
            Err(e) if is_descriptor_exhaustion(&e) => return Err(NoBackend::OutOfDescriptors(e)),
            Err(e) => {
                ctx.backends[backend].note_connect_failure(ctx.now, &e);
                tried.push(backend);
            }
        }
    }
}

/// The policy's pick, not in `tried`, counted on its backend. Under bounded
/// loads a pick that is over its cap once counted (another worker counted
/// one at the same moment) is given back and the policy asked again without
/// it; if every backend ends up so, the first pick stands, as the policy's
/// own fallback would have it.
fn pick_counted(ctx: &mut Ctx, key: &PickKey, tried: &[usize]) -> Option<(usize, Claim)> {
    let first = slow_start::pick(&mut *ctx.policy, key, ctx.backends, tried, ctx.now)?;
    let Some(factor) = ctx.policy.balance_factor() else {
        return Some((first, ctx.backends[first].claim()));
    };
    // The list of picks given back is made only when one is (rarely).
    let mut passed: Option<Vec<usize>> = None;
    let mut pick = first;
    loop {
        let claim = ctx.backends[pick].claim();
        if bounded_load::holds_after_count(&Candidates::new(ctx.backends, tried), pick, factor) {
            return Some((pick, claim));
        }
        drop(claim);
        let passed = passed.get_or_insert_with(|| tried.to_vec());
        passed.push(pick);
        match slow_start::pick(&mut *ctx.policy, key, ctx.backends, passed, ctx.now) {
            Some(next) => pick = next,
            None => return Some((first, ctx.backends[first].claim())),
        }
    }
}
