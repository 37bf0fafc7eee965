//! Workers: more reactor threads serving the same frontends (`--workers N`).
//!
//! The main reactor is worker 0 and the only one with the admin API,
//! signals, health checks, DNS discovery, spawned backends and the binary
//! upgrade socket. Each other worker is a `Server` of its own (own epoll,
//! buffers, timers, sessions) built from the same plan, accepting from the
//! same listening sockets. What they share:
//!
//! - membership and health: the main reactor sends each pool's backend
//!   slots (address, weight, admin state, up or down) whenever they change,
//!   and a worker's copy mirrors them slot for slot;
//! - the in-use counts that fewest_connections, least_requests and bounded
//!   loads read: one atomic counter per backend, shared by all copies;
//! - passive failure marking and outlier ejection: one state per backend,
//!   shared the same way (the main reactor's tick brings backends back);
//! - the retry budget: one window per HTTP frontend (in the `Config`);
//! - the round-robin position: one atomic per frontend (in `PolicyParams`);
//! - counters for `/stats` and `/metrics`: each worker publishes a snapshot
//!   every tick (0.5 s) and at exit; the main reactor adds them up.
//!
//! Commands travel by channel with the worker's `mio::Waker`: nothing
//! blocks either reactor.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use log::{error, warn};

use super::upgrade::Handed;
use super::{Plan, Server};
use crate::backend::{AdminState, Backend};
use crate::stats::FrontendStats;

/// One backend slot as the main reactor sees it.
pub struct Member {
    pub addr: std::net::SocketAddr,
    pub weight: u32,
    pub admin: AdminState,
    pub removing: bool,
    pub removed: bool,
    /// The health checks' verdict.
    pub up: bool,
    /// The in-use count, failure marking and ejection, shared with the copies.
    pub shared: crate::backend::SharedState,
    /// Slow start, as the main reactor's copy ramps.
    pub ramp: crate::slow_start::Ramp,
}

impl Member {
    pub fn of(b: &Backend) -> Member {
        Member {
            addr: b.addr,
            weight: b.weight,
            admin: b.admin,
            removing: b.removing,
            removed: b.removed,
            up: b.health.is_up(),
            shared: b.shared(),
            ramp: b.ramp.clone(),
        }
    }

    /// What a change of would matter to a worker (the shared state never
    /// changes for a slot without its address or `removed` changing).
    fn fingerprint(b: &Backend, h: u64) -> u64 {
        use crate::policy::hash::{hash_addr, mix64};
        let flags = u64::from(b.weight)
            | (b.admin as u64) << 32
            | u64::from(b.removing) << 40
            | u64::from(b.removed) << 41
            | u64::from(b.health.is_up()) << 42;
        let ramp = b.ramp.since().map_or(0, |t| t.saturating_duration_since(origin()).as_nanos() as u64 | 1)
            ^ b.ramp.duration.map_or(0, |d| mix64(d.as_nanos() as u64));
        mix64(h ^ hash_addr(0, b.addr) ^ mix64(flags) ^ mix64(ramp))
    }
}

/// A fixed instant to express ramp start times as numbers.
fn origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

/// A pool's slots, in the main reactor's order.
pub struct PoolMembers {
    pub pool: String,
    pub slots: Vec<Member>,
}

pub fn pool_fingerprint(backends: &[Backend]) -> u64 {
    backends.iter().fold(backends.len() as u64, |h, b| Member::fingerprint(b, h))
}

pub enum Command {
    Members(PoolMembers),
    /// A reload: the plan, descriptors of the listeners it needs by frontend
    /// name, and every pool's slots after it (applied before any client is).
    Reload(Box<Plan>, Vec<Handed>, Vec<PoolMembers>),
    /// The admin API switched this frontend's policy.
    Policy(String, crate::policy::PolicyKind),
    /// Publish a snapshot now, marked with this number, and wake the main reactor.
    Publish(u64),
    /// Stop accepting and finish (a second one: finish now).
    Drain,
    ReopenLogs,
}

/// What a worker counted, for the main reactor's `/stats` and `/metrics`.
#[derive(Default)]
pub struct Snapshot {
    /// Frontend name, its counters, its open clients.
    pub frontends: Vec<(String, FrontendStats, usize)>,
    /// Pool name, its backends (counters, latencies).
    pub pools: Vec<(String, Vec<Backend>)>,
    /// Frontend name, its policy's and shadow policies' picks.
    pub lab: Vec<(String, crate::policy::LabCounts)>,
    pub buffers_in_use: usize,
    pub pipes: crate::admin::PipeCounts,
    pub timers_pending: usize,
    /// The `Publish` it answers (0: a periodic one).
    pub asked: u64,
}

/// Written by a worker, read by the main reactor.
#[derive(Default)]
pub struct Shared {
    pub open_clients: AtomicUsize,
    /// Open clients per frontend index (the same indices in every worker).
    pub open_by_frontend: Mutex<Vec<usize>>,
    pub finished: AtomicBool,
    pub snapshot: Mutex<Snapshot>,
}

/// Marks a worker finished when its thread ends.
struct Finished(Arc<Shared>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Release);
    }
}

/// The worker's end.
pub struct Link {
    pub rx: Receiver<Command>,
    pub shared: Arc<Shared>,
    /// Wakes the main reactor (a snapshot it asked for is ready).
    pub main: Arc<mio::Waker>,
}

struct Handle {
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// The main reactor's end: every other worker.
pub struct Workers {
    handles: Vec<Handle>,
    /// Per pool name, the fingerprint of the slots sent last.
    sent: Vec<(String, u64)>,
    /// The last `Publish` number sent.
    asked: u64,
}

impl Workers {
    /// Start the workers 1..`threads` on `plan`, each with descriptors of
    /// its listeners (`listeners(id)`) and the pools' current slots
    /// (`members()`). Returns once each has bound everything; if one fails,
    /// those started already are stopped (dropping `Workers` drains them).
    pub fn start(
        threads: usize,
        main: &Arc<mio::Waker>,
        plan: &Plan,
        listeners: impl Fn(usize) -> std::io::Result<Vec<Handed>>,
        members: impl Fn() -> Vec<PoolMembers>,
    ) -> std::io::Result<Workers> {
        let mut workers = Workers { handles: Vec::new(), sent: Vec::new(), asked: 0 };
        for id in 1..threads {
            let (tx, rx) = mpsc::channel();
            let shared = Arc::new(Shared::default());
            let link = Link { rx, shared: Arc::clone(&shared), main: Arc::clone(main) };
            let (ready_tx, ready_rx) = mpsc::channel();
            let (plan, handed, members) = (plan.clone(), listeners(id)?, members());
            let finished = Finished(Arc::clone(&shared));
            let thread = std::thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
                // Set however the thread ends, a panic included.
                let _finished = finished;
                let server = match Server::worker(plan, handed, (members, threads), link) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(server.waker()));
                if let Err(e) = server.run() {
                    error!("worker {id}: {e}");
                }
            })?;
            let started = ready_rx.recv().map_err(|_| std::io::Error::other(format!("worker {id} did not start")));
            let waker = started?.map_err(|e| std::io::Error::new(e.kind(), format!("worker {id}: {e}")))?;
            workers.handles.push(Handle { tx, waker, shared, thread: Some(thread) });
        }
        Ok(workers)
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn send(&self, cmd: impl Fn() -> Command) {
        self.send_each(|_| cmd());
    }

    /// Send each worker what `cmd` makes for its id (1..).
    pub fn send_each(&self, cmd: impl Fn(usize) -> Command) {
        for (i, h) in self.handles.iter().enumerate() {
            if h.shared.finished.load(Ordering::Acquire) {
                continue;
            }
            if h.tx.send(cmd(i + 1)).is_err() || h.waker.wake().is_err() {
                warn!("worker {} is gone", i + 1);
            }
        }
    }

    /// Note pools' slots as sent (with a reload, which carries them).
    pub fn sent_all(&mut self, pools: &[(String, u64)]) {
        self.sent = pools.to_vec();
    }

    /// Send pool `name`'s slots if they changed since last sent.
    pub fn sync_pool(&mut self, name: &str, backends: &[Backend]) {
        let print = pool_fingerprint(backends);
        match self.sent.iter_mut().find(|(n, _)| n == name) {
            Some((_, p)) if *p == print => return,
            Some((_, p)) => *p = print,
            None => self.sent.push((name.to_string(), print)),
        }
        self.send(|| {
            Command::Members(PoolMembers { pool: name.to_string(), slots: backends.iter().map(Member::of).collect() })
        });
    }

    /// Ask every worker for a fresh snapshot; returns the number that
    /// [`Self::published`] waits for.
    pub fn ask_snapshots(&mut self) -> u64 {
        self.asked += 1;
        let n = self.asked;
        self.send(|| Command::Publish(n));
        n
    }

    /// Has every running worker published snapshot `n` (or a later one)?
    pub fn published(&self, n: u64) -> bool {
        self.handles.iter().all(|h| {
            h.shared.finished.load(Ordering::Acquire) || h.shared.snapshot.lock().map_or(true, |s| s.asked >= n)
        })
    }

    /// Clients open in the other workers.
    pub fn open_clients(&self) -> usize {
        self.open_per_worker().sum()
    }

    /// Clients open in each other worker, as of its last loop turn.
    pub fn open_per_worker(&self) -> impl Iterator<Item = usize> + '_ {
        self.handles.iter().map(|h| h.shared.open_clients.load(Ordering::Relaxed))
    }

    /// Clients open in the other workers on frontend `i`.
    pub fn open_on_frontend(&self, i: usize) -> usize {
        let lock = |h: &Handle| h.shared.open_by_frontend.lock().map(|v| v.get(i).copied().unwrap_or(0)).unwrap_or(0);
        self.handles.iter().map(lock).sum()
    }

    pub fn all_finished(&self) -> bool {
        self.handles.iter().all(|h| h.shared.finished.load(Ordering::Acquire))
    }

    /// Read every worker's latest snapshot.
    pub fn with_snapshots<R>(&self, f: impl FnOnce(&[&Snapshot]) -> R) -> R {
        let guards: Vec<_> =
            self.handles.iter().map(|h| h.shared.snapshot.lock().unwrap_or_else(|p| p.into_inner())).collect();
        let refs: Vec<&Snapshot> = guards.iter().map(|g| &**g).collect();
        f(&refs)
    }

    /// Wait for every worker thread to end (they drain on their own deadline).
    pub fn join(&mut self) {
        for h in self.handles.iter_mut() {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Workers {
    /// A main reactor that stops for any reason stops its workers too.
    fn drop(&mut self) {
        self.send(|| Command::Drain);
        self.send(|| Command::Drain);
        self.join();
    }
}

/// Make a worker's copy of a pool mirror the main reactor's slots (a new
/// backend made by `new`, with the pool's settings). Returns the slots
/// whose backend went away or changed (the modes forget them).
pub fn mirror(
    backends: &mut Vec<Backend>,
    slots: Vec<Member>,
    new: impl Fn(std::net::SocketAddr) -> Backend,
) -> Vec<usize> {
    let mut gone = Vec::new();
    for (i, m) in slots.into_iter().enumerate() {
        if i == backends.len() {
            backends.push(new(m.addr));
        }
        let b = &mut backends[i];
        if b.addr != m.addr || (m.removed && !b.removed) {
            gone.push(i);
        }
        if b.addr != m.addr {
            *b = new(m.addr);
        }
        b.weight = m.weight;
        b.admin = m.admin;
        b.removing = m.removing;
        b.removed = m.removed;
        b.follow_health(m.up);
        b.ramp.follow(&m.ramp);
        b.share(m.shared);
    }
    gone
}
