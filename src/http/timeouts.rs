//! The HTTP engine's clocks, checked by a periodic sweep against times kept
//! in each connection (nothing is queued per request, so memory does not
//! grow with the request rate times a long timeout).

use std::time::Instant;

use log::debug;

use super::engine::Client;
use super::engine::{ClientPhase, ConnPhase, Ctx, HttpEngine, HttpSettings};
use crate::outlier::{self, Outcome};
use crate::sessions::End;

/// Why a client connection's time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// `--idle-timeout`: nothing moved either way, in any phase.
    Idle,
    /// `--request-timeout`: a request head begun but not completed (408).
    SlowHead,
    /// `--keepalive-timeout`: no new request after the last response.
    KeepAlive,
    /// `--backend-timeout`: an exchange on which nothing moved; 504 before the
    /// response head, a reset after it; 408 if the client's body stalled.
    Stalled,
    /// An answer the client does not read, past `--backend-timeout`.
    Unread,
}

fn expired(c: &Client, now: Instant, s: &HttpSettings) -> Option<Expired> {
    let since = |t: Instant| now.saturating_duration_since(t);
    if s.idle_timeout.is_some_and(|idle| since(c.last_active) >= idle) {
        return Some(Expired::Idle);
    }
    match &c.phase {
        ClientPhase::Head => match c.head_since {
            Some(t) => (since(t) >= s.request_timeout).then_some(Expired::SlowHead),
            None => s.keepalive_timeout.filter(|&k| since(c.last_active) >= k).map(|_| Expired::KeepAlive),
        },
        ClientPhase::Exchange(ex) => (since(ex.last_progress) >= s.backend_timeout).then_some(Expired::Stalled),
        ClientPhase::Closing => (since(c.last_active) >= s.backend_timeout).then_some(Expired::Unread),
        // Tunnels (WebSocket) are long-lived and often silent: only `--idle-timeout`.
        ClientPhase::Tunnel(_) => None,
    }
}

impl HttpEngine {
    /// Periodic housekeeping: pooled connections idle too long, clients
    /// whose clock ran out, and the access log flush.
    pub fn sweep(&mut self, ctx: &mut Ctx) {
        self.flush_log();
        let now = ctx.now;
        let pool_idle = self.settings.pool_idle_timeout;
        let stale: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, ConnPhase::Idle { since } if now - since >= pool_idle))
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.close_conn(k);
        }
        let due: Vec<(usize, Expired)> =
            self.clients.iter().filter_map(|(k, c)| Some((k, expired(c, now, &self.settings)?))).collect();
        for (k, why) in due {
            let c = &mut self.clients[k];
            debug!("s={}: {why:?} timeout", c.id);
            c.end_hint = Some(End::Timeout);
            match why {
                Expired::Idle => {
                    let busy = matches!(self.clients[k].phase, ClientPhase::Exchange(_));
                    self.close_client(k, busy, End::Timeout);
                }
                Expired::KeepAlive => self.close_client(k, false, End::Timeout),
                Expired::Unread => self.close_client(k, true, End::Timeout),
                Expired::SlowHead => {
                    self.answer_and_close(k, 408, ctx);
                    self.drive(k, ctx);
                }
                Expired::Stalled => {
                    // The client's fault only if the proxy is waiting for its
                    // body with nothing of it left to send: body bytes held
                    // (or a head unsent) mean the backend stopped reading.
                    let c = &self.clients[k];
                    let nothing_held = c.rbuf.as_ref().is_none_or(|b| b.is_empty());
                    let client_stalled = matches!(
                        &c.phase,
                        ClientPhase::Exchange(ex)
                            if !ex.req_body.is_done() && ex.resp.is_none() && ex.head_sent && nothing_held
                    );
                    if let ClientPhase::Exchange(ex) = &c.phase
                        && !client_stalled
                    {
                        let why = Outcome::Failure("no progress within --backend-timeout".into());
                        outlier::record(ctx.backends, ex.backend, why, ctx.now);
                    }
                    self.fail_exchange(k, if client_stalled { 408 } else { 504 }, ctx);
                    self.drive(k, ctx);
                }
            }
        }
    }
}
