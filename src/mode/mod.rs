//! What a frontend does with its clients: the modes behind one interface.
//!
//! The server loop owns the sockets' tokens, the listeners, signals and
//! drain; a mode owns its connections and is called with a `Ctx` that lends
//! it the frontend's pool (backends and policy), the buffer pool and the
//! clock. Adding a mode is one file that implements `Mode` plus one line in
//! `build`.
//!
//! - `tcp`: a client pinned to one backend for its life, bytes spliced both ways.
//! - `connector`: pick, reuse or connect, retry elsewhere: shared by every mode.
//! - HTTP and redirect: `crate::http::HttpEngine`, one balancing decision per request.

pub mod connector;
pub mod tcp;

use std::net::SocketAddr;
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Registry, Token};

use crate::backend::Backend;
use crate::buffer::BufferPool;
use crate::config::{Config, Mode as ModeKind};
use crate::per_ip::{ClientSlot, PerIpTable};
use crate::policy::Shadowed;
use crate::server::timers::{TimerOwner, Timers};
use crate::server::tokens::Owner;
use crate::stats::FrontendStats;

/// What the server lends a mode for one call.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub backends: &'a mut [Backend],
    /// The frontend's policy, with its shadows (if any).
    pub policy: &'a mut Shadowed,
    /// The buffer pool (not the backend pool).
    pub pool: &'a BufferPool,
    /// Kernel pipes for splicing (TCP mode).
    pub pipes: &'a crate::splice::PipePool,
    pub now: Instant,
    /// Index of the frontend whose mode is called, for its sockets' tokens.
    pub frontend: usize,
    /// The server's one deadline heap.
    pub timers: &'a mut Timers,
    /// The frontend's limits per client address.
    pub per_ip: &'a mut PerIpTable,
    /// The counters of the frontend whose mode is called.
    pub stats: &'a mut FrontendStats,
}

impl Ctx<'_> {
    /// The token of a socket this mode calls `key`.
    pub fn token(&self, key: usize) -> Token {
        Owner::Mode { frontend: self.frontend, key }.token()
    }

    /// Call this mode's `on_deadline(key, generation)` at `when`; returns the generation.
    pub fn arm(&mut self, when: Instant, key: usize) -> u64 {
        self.timers.arm(when, TimerOwner::Mode(self.frontend), key)
    }
}

pub trait Mode {
    /// A client connection was accepted; the session keeps `slot` (its
    /// place under the per-address limit) until it ends.
    fn accept(&mut self, sock: TcpStream, addr: SocketAddr, slot: ClientSlot, ctx: &mut Ctx);
    /// Readiness on one of this mode's sockets (`key` as given to `Ctx::token`).
    fn event(&mut self, key: usize, ev: &Event, ctx: &mut Ctx);
    /// Continue connections whose work budget ran out last round.
    fn run_ready_again(&mut self, ctx: &mut Ctx);
    fn has_ready_work(&self) -> bool;
    /// A deadline armed with `Ctx::arm` is due; it may be stale (compare the generation).
    fn on_deadline(&mut self, key: usize, generation: u64, ctx: &mut Ctx);
    /// Whether the deadline armed for `key` with `generation` still matters
    /// (stale ones are dropped from the heap in bulk).
    fn waits_for(&self, key: usize, generation: u64) -> bool;
    /// Periodic work of the mode's own (e.g. idle sweeps), at `next_deadline`.
    fn on_timers(&mut self, _ctx: &mut Ctx) {}
    /// Periodic housekeeping (twice a second).
    fn sweep(&mut self, _ctx: &mut Ctx) {}
    /// When `on_timers` wants to run next.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// Client connections open (what --max-connections counts).
    fn open_clients(&self) -> usize;
    /// Stop taking new work on open connections where the mode can (HTTP:
    /// close idle keep-alive clients, answer `Connection: close`).
    fn start_drain(&mut self) {}
    /// Close everything now (drain timeout).
    fn close_all(&mut self, ctx: &mut Ctx);
    /// Open its log file again by name (SIGUSR1, after logrotate moved it):
    /// the path, or why not (the old file stays in use); `None` without one.
    fn reopen_logs(&mut self) -> Option<std::io::Result<std::path::PathBuf>> {
        None
    }
    /// The pool has `n` backends now (some may be new).
    fn backends_changed(&mut self, _n: usize) {}
    /// Backend `idx` left the pool; drop what the mode keeps for it.
    fn forget_backend(&mut self, _idx: usize) {}
    /// Why a backend connect failed for want of descriptors since the last call.
    fn take_out_of_descriptors(&mut self) -> Option<String>;
    /// Write out buffered logs.
    fn flush_log(&mut self) {}
    /// New settings (reload): they apply to new work; open work keeps going.
    fn reconfigure(&mut self, _config: &Config) {}
}

/// Connections whose work budget ran out this round, driven again after the
/// next poll. Two vectors take turns, so neither is reallocated per round.
#[derive(Default)]
pub struct ReadyAgain {
    next: Vec<usize>,
    spare: Vec<usize>,
}

impl ReadyAgain {
    pub fn push(&mut self, key: usize) {
        self.next.push(key);
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    /// This round's keys; the queue fills anew while they are driven.
    /// Hand the vector back with `done`.
    pub fn take(&mut self) -> Vec<usize> {
        std::mem::replace(&mut self.next, std::mem::take(&mut self.spare))
    }

    pub fn done(&mut self, mut keys: Vec<usize>) {
        keys.clear();
        self.spare = keys;
    }
}

/// The mode `config` asks for.
pub fn build(config: &Config) -> std::io::Result<Box<dyn Mode>> {
    Ok(match (config.mode, config.http_settings()) {
        (ModeKind::Tcp, _) | (_, None) => Box::new(tcp::TcpMode::new(config)),
        (_, Some(settings)) => Box::new(crate::http::HttpEngine::new(
            settings,
            config.backends.len(),
            crate::http::open_access_log(config)?,
        )),
    })
}
