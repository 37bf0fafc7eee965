//! The server core: one thread, one `mio::Poll`, any number of frontends.
//!
//! Readiness strategy (kept everywhere): every socket is registered once,
//! edge-triggered, for READABLE | WRITABLE, and never re-registered. Events
//! only set flags in the connection's `Ready`; the connection then works
//! while the flags it needs are set. So a full buffer stops reading simply by
//! not reading (the flag stays set and is acted on when the buffer drains),
//! and changing what we want costs no `epoll_ctl` call.
//!
//! The loop owns tokens (`tokens.rs`), the listeners, signals, the admin
//! API, accept pausing and drain. Each frontend has a listener and a `Mode`
//! (TCP, HTTP, redirect) that owns its connections; each pool (`pool.rs`)
//! has backends, a policy, health checks and probes. A mode with work left
//! after its budget says so (`has_ready_work`), and the next poll then does
//! not wait, so a fast transfer cannot starve the others.

mod accept;
mod admin_commands;
mod discovery;
mod explain;
mod frontend;
mod handover;
mod handshake;
mod listeners;
pub mod pool;
mod reload;
mod shutdown;
pub mod timers;
pub mod tokens;
pub mod upgrade;
mod worker_sync;
mod workers;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::UnixListener;
use mio::{Events, Interest, Poll};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::admin::{self, AdminServer};
use crate::buffer::BufferPool;
use crate::config::Accept;
use crate::config::Config;
use crate::mode::{self, Ctx, Mode};
use crate::splice::{MAX_PIPES, PipePool, SpliceMode};
use accept::AcceptPause;
use frontend::Frontend;
use handover::Handover;
use listeners::take_over_if_running;
use pool::Pool;
use timers::{Deadline, Tick, TimerOwner, Timers};
use tokens::{ADMIN_LISTENER, MAX_INDEX, Owner, SIGNALS, UPGRADE_LISTENER, UPGRADE_STREAM, WAKER};
use workers::{Link, PoolMembers, Workers};

/// Free buffers kept for reuse; more are returned to the allocator. Large
/// enough that a few hundred busy connections do not free and re-zero
/// buffers on every request (measured: 4% of CPU at 64).
const POOL_KEEP_FREE: usize = 512;
/// How often housekeeping runs: HTTP timeouts and pool idle timeouts, access
/// log flush, admin connection deadlines, backends whose removal finished,
/// spawned backends that died.
const TICK: Duration = Duration::from_millis(500);

/// What to serve: frontends, each with the name of its pool; pools by name
/// with the settings they take from the first frontend naming them.
#[derive(Clone)]
pub struct Plan {
    /// (frontend name, its settings, pool name).
    pub frontends: Vec<(String, Config, String)>,
    /// `--upgrade-socket`: take the listeners of a process serving there,
    /// then serve handovers there ourselves.
    pub upgrade_socket: Option<PathBuf>,
}

impl Plan {
    /// Every frontend of `config`, with its settings and its pool's name.
    pub fn from_config(config: &crate::config::ServerConfig) -> Plan {
        let mut frontends = Vec::new();
        for i in 0..config.frontends.len() {
            frontends.push((config.frontends[i].name.clone(), config.to_config(i), config.pool_of(i).name.clone()));
            // Each SNI route is served by a frontend of its own (its pool and
            // policy) without a listener: the parent hands it the connections.
            for (r, route) in config.frontends[i].sni_routes.iter().enumerate() {
                let mut routed = config.to_config_with_pool(i, route.pool);
                routed.routed = true;
                routed.sni_routes.clear();
                frontends.push((config.sni_frontend_name(i, r), routed, config.pools[route.pool].name.clone()));
            }
        }
        Plan { frontends, upgrade_socket: config.global.upgrade_socket.clone() }
    }

    /// What a worker serves: the same frontends, without what only the main
    /// reactor runs (admin API, upgrade socket, checks, DNS, spawned
    /// backends, usage lines); membership comes from the main reactor.
    fn for_worker(&self) -> Plan {
        let mut plan = self.clone();
        plan.upgrade_socket = None;
        for (_, c, _) in plan.frontends.iter_mut() {
            c.admin = None;
            c.upgrade_socket = None;
            c.stats_interval = None;
            c.health = None;
            c.spawn_cmd = None;
            c.replicas = None;
            c.names.clear();
        }
        plan
    }

    /// One frontend and one pool, both named "default" (the command line).
    pub fn single(config: Config) -> Plan {
        let upgrade_socket = config.upgrade_socket.clone();
        Plan { frontends: vec![("default".into(), config, "default".into())], upgrade_socket }
    }
}

/// Reads the configuration again (SIGHUP, `POST /reload`).
pub type Reloader = Box<dyn FnMut() -> Result<Plan, String>>;

pub struct Server {
    poll: Poll,
    /// Every mode's deadlines.
    timers: Timers,
    reloader: Option<Reloader>,
    /// The main reactor's; workers take no signals.
    signals: Option<Signals>,
    frontends: Vec<Frontend>,
    pools: Vec<Pool>,
    buffers: BufferPool,
    /// Kernel pipes of splicing TCP sessions, shared by this reactor's frontends.
    pipes: PipePool,
    /// Global settings (limits, admin, stats, drain): the first frontend's.
    global: Config,
    accept_pause: Option<AcceptPause>,
    out_of_descriptors_logged: bool,
    admin: Option<AdminServer>,
    /// Where a new process asks for our listeners (binary upgrade).
    upgrade: Option<(UnixListener, PathBuf)>,
    /// A handover sent and waiting for the new process's `ready`.
    handover: Option<Handover>,
    /// Listeners taken over from a running process, which waits for our
    /// `ready` (sent once everything, workers included, is up): the stream
    /// to it and how many of its listeners were not needed.
    takeover: Option<(std::os::unix::net::UnixStream, usize)>,
    started: Instant,
    next_tick: Instant,
    next_stats: Option<Instant>,
    drain_until: Option<Instant>,
    now: Instant,
    /// Wakes the poll from other threads (the DNS thread).
    waker: std::sync::Arc<mio::Waker>,
    /// The DNS thread, once a pool names servers by DNS.
    discovery: Option<crate::discovery::Discovery>,
    /// Clients waiting for their PROXY protocol header.
    handshakes: handshake::Handshakes,
    /// The main reactor's other workers (`--workers`).
    workers: Option<Workers>,
    /// A worker's line to the main reactor.
    link: Option<Link>,
    /// `/stats` and `/metrics` requests waiting for the workers' snapshots:
    /// (admin connection, request serial, command, snapshot number, asked at).
    stats_requests: Vec<(usize, u64, crate::admin::Command, u64, Instant)>,
    /// A worker: listeners the main reactor handed over, taken by frontend name.
    supplied: Option<Vec<upgrade::Handed>>,
    /// Listeners are shared by several reactors (`EPOLLEXCLUSIVE`).
    exclusive: bool,
    /// `--accept reuseport`: a socket per reactor per frontend.
    reuseport: bool,
    /// Reactor threads in the process (1 without workers).
    reactors: usize,
    /// With workers: the process's limit (`global.max_connections` is this worker's part).
    max_connections_total: Option<usize>,
}

impl Server {
    /// Listen on every frontend's address, start pools, checks, the admin
    /// API, and the other workers when `workers` asks for more than one.
    pub fn bind(plan: Plan) -> io::Result<Server> {
        let threads = plan.frontends.first().map_or(1, |(_, c, _)| c.workers.resolve());
        let worker_plan = (threads > 1).then(|| plan.for_worker());
        let mut server = Server::build(plan, None, threads)?;
        // A running process we take over from hears `ready` only after this.
        if let Some(mut plan) = worker_plan {
            for (_, c, _) in plan.frontends.iter_mut() {
                c.max_connections = server.global.max_connections;
            }
            let (shares, members) = (|id| server.listener_shares(id), || server.members());
            let workers = Workers::start(threads, &server.waker, &plan, shares, members)?;
            let how = if server.reuseport { "a listening socket each (SO_REUSEPORT)" } else { "shared listeners" };
            info!("{threads} workers (reactor threads) serving every frontend, {how}");
            server.workers = Some(workers);
        }
        server.finish_start()?;
        Ok(server)
    }

    /// Everything is up: tell the process we took over from (it then
    /// drains), and take upgrade requests ourselves.
    fn finish_start(&mut self) -> io::Result<()> {
        if let Some((stream, unused)) = self.takeover.take() {
            upgrade::confirm(stream)?;
            info!("took over listeners from the running lbproxy ({unused} not needed here, closed)");
        }
        if let Some((_, path)) = &self.upgrade {
            upgrade::publish(path)?;
        }
        Ok(())
    }

    /// A worker of `threads`: the main reactor's plan for workers, its
    /// listeners, its pools' current slots.
    fn worker(
        plan: Plan,
        handed: Vec<upgrade::Handed>,
        (members, threads): (Vec<PoolMembers>, usize),
        link: Link,
    ) -> io::Result<Server> {
        let mut server = Server::build(plan, Some(handed), threads)?;
        server.link = Some(link);
        for m in members {
            server.on_members(m);
        }
        Ok(server)
    }

    fn build(plan: Plan, mut supplied: Option<Vec<upgrade::Handed>>, threads: usize) -> io::Result<Server> {
        let (_, first, _) = plan.frontends.first().ok_or_else(|| io::Error::other("no frontend configured"))?;
        let reuseport = first.accept == Accept::Reuseport;
        // Shared sockets (one per frontend, every reactor polls it) are
        // registered with EPOLLEXCLUSIVE; a reactor's own are not.
        let exclusive = threads > 1 && !reuseport;
        let placing = (reuseport, threads);
        if plan.frontends.len() > MAX_INDEX {
            return Err(io::Error::other(format!("at most {MAX_INDEX} frontends")));
        }
        let mut global = first.clone();
        let now = Instant::now();
        let poll = Poll::new()?;
        let mut timers = Timers::default();
        let mut handover = match &plan.upgrade_socket {
            Some(path) => take_over_if_running(path)?,
            None => None,
        };
        let mut pools: Vec<Pool> = Vec::new();
        let mut frontends = Vec::new();
        // Descriptors kept aside: our own, admin connections, HTTP idle pools, checks.
        let admin_conns = if global.admin.is_some() { admin::MAX_CONNS } else { 0 };
        let mut reserved = (64 + admin_conns) as u64;
        // Pipes in flight take descriptors beside the sessions' two.
        let splices =
            plan.frontends.iter().any(|(_, c, _)| c.mode == crate::config::Mode::Tcp && c.splice == SpliceMode::Auto);
        if splices {
            reserved += 2 * MAX_PIPES as u64;
        }
        for (i, (name, config, pool_name)) in plan.frontends.into_iter().enumerate() {
            let pool = match pools.iter().position(|p| p.name == pool_name) {
                Some(p) => p,
                None => {
                    pools.push(Pool::new(&pool_name, config.clone(), pools.len(), now, &mut timers)?);
                    pools.len() - 1
                }
            };
            let pooled = if config.mode == crate::config::Mode::Tcp { 0 } else { config.pool_size };
            reserved += ((pooled + 2) * config.backends.len()) as u64;
            let (listener, addr) = if config.routed {
                (None, config.listen)
            } else {
                let mut sockets = match supplied.as_mut() {
                    Some(s) => listeners::take_named(s, &name)?,
                    None => listeners::open(config.listen, config.backlog, placing, handover.as_mut().map(|(_, h)| h))
                        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen)))?,
                };
                sockets.register(&poll, Owner::Listener { frontend: i }.token(), exclusive)?;
                let addr = sockets.local_addr()?;
                (Some(sockets), addr)
            };
            let mode = mode::build(&config)?;
            let slots = pools[pool].backends.len();
            frontends.push(Frontend::new(name, (listener, addr), mode, (pool, slots), config, i, (now, &mut timers)));
        }
        // The limit is the process's: each worker takes its part. Every
        // reactor keeps its own idle backend connections, epoll and wakers.
        // A worker's plan carries the main reactor's figures.
        let max_connections_total = match supplied {
            None => crate::limits::cap_connections(global.max_connections, reserved * threads as u64),
            Some(_) => global.max_connections * threads,
        };
        if supplied.is_none() {
            global.max_connections = max_connections_total.div_ceil(threads).max(1);
        }
        // SIGHUP is caught only so that it does not kill (its default action);
        // SIGPIPE is already ignored by the Rust runtime, so a write to a
        // closed peer is an EPIPE error, not death.
        // SIGUSR1 reopens log files (logrotate), as for nginx.
        let signals = match supplied {
            Some(_) => None,
            None => {
                let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])?;
                poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
                Some(signals)
            }
        };
        let admin = match global.admin {
            None => None,
            Some(addr) => {
                let mut l = listeners::open(addr, 128, (false, 1), handover.as_mut().map(|(_, h)| h))
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on admin address {addr}: {e}")))?
                    .polled
                    .swap_remove(0);
                poll.registry().register(&mut l, ADMIN_LISTENER, Interest::READABLE)?;
                info!("admin API on http://{}/ (dashboard), /stats, /metrics", l.local_addr()?);
                Some(AdminServer::new(l, global.admin_token.clone(), global.admin_read_only_open))
            }
        };
        // Our own upgrade socket is bound (beside the old one's path) before we
        // tell the old process to stop: nothing that can fail comes after.
        let upgrade = match plan.upgrade_socket {
            Some(path) => Some((upgrade::listen(&path)?, path)),
            None => None,
        };
        let upgrade = match upgrade {
            Some((mut l, path)) => {
                poll.registry().register(&mut l, UPGRADE_LISTENER, Interest::READABLE)?;
                Some((l, path))
            }
            None => None,
        };
        // Listeners not needed here are closed now; `ready` waits for `finish_start`.
        let takeover = handover.map(|(stream, unused)| (stream, unused.len()));
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            waker,
            discovery: None,
            handshakes: Default::default(),
            poll,
            timers,
            reloader: None,
            upgrade,
            handover: None,
            takeover,
            signals,
            frontends,
            pools,
            buffers: BufferPool::new(global.buffer_size, POOL_KEEP_FREE),
            // The maximum is the process's: each worker takes its part.
            pipes: PipePool::new(MAX_PIPES.div_ceil(threads), global.pipe_size),
            accept_pause: None,
            out_of_descriptors_logged: false,
            admin,
            started: now,
            next_tick: now + TICK,
            next_stats: global.stats_interval.map(|d| now + d),
            drain_until: None,
            now,
            global,
            workers: None,
            link: None,
            stats_requests: Vec::new(),
            supplied: None,
            exclusive,
            reuseport,
            reactors: threads,
            max_connections_total: (threads > 1).then_some(max_connections_total),
        })
    }

    /// Where reloads read the configuration from (a config file).
    pub fn set_reloader(&mut self, reloader: Reloader) {
        self.reloader = Some(reloader);
    }

    /// Read the configuration again and apply it; an invalid one changes nothing.
    pub fn reload(&mut self) -> Result<reload::Changes, String> {
        let reloader = self.reloader.as_mut().ok_or("no configuration file to reload (started from flags)")?;
        let plan = reloader().map_err(|e| format!("reload refused: {e}"))?;
        if self.drain_until.is_some() {
            return Err("reload refused: shutting down".into());
        }
        let for_workers = self.workers.is_some().then(|| plan.clone());
        let changes = self.apply(plan).map_err(|e| format!("reload refused: {e}"))?;
        if let Some(plan) = for_workers {
            self.reload_workers(plan);
        }
        Ok(changes)
    }

    /// The first frontend's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.frontends[0].local_addr
    }

    /// Run until a signal and the drain that follows it. Returns `Ok` on a
    /// clean shutdown.
    pub fn run(mut self) -> io::Result<()> {
        for f in self.frontends.iter().filter(|_| !self.is_worker()) {
            let pool = &self.pools[f.pool];
            let backends: Vec<String> = pool.backends.iter().map(|b| b.addr.to_string()).collect();
            let named = if self.frontends.len() > 1 { format!(", frontend {}", f.name) } else { String::new() };
            info!(
                "lbproxy {} listening on {}, mode {}, policy {}, backends [{}]{named}",
                env!("CARGO_PKG_VERSION"),
                f.local_addr,
                f.config.mode.name(),
                f.config.policy,
                backends.join(", ")
            );
        }
        // Pools named by DNS get their first answer as soon as it comes.
        self.dns_tick();
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.now = Instant::now();
            // A worker applies what the main reactor sent before anything
            // else, so no client it accepts now sees the state from before.
            self.on_commands();
            for i in 0..self.frontends.len() {
                if self.frontends[i].mode.has_ready_work() {
                    self.with_mode(i, |m, ctx| m.run_ready_again(ctx));
                }
            }
            for ev in events.iter() {
                self.dispatch(ev);
            }
            self.on_timers();
            for i in 0..self.frontends.len() {
                if let Some(why) = self.frontends[i].mode.take_out_of_descriptors() {
                    self.pause_for_descriptors(&why);
                }
            }
            self.sync_workers();
            self.publish_open_clients();
            if self.accept_pause == Some(AcceptPause::MaxConnections)
                && self.open_clients() < self.global.max_connections
            {
                self.resume_accept();
            }
            if let Some(until) = self.drain_until {
                if self.open_clients() == 0 && self.workers.as_ref().is_none_or(Workers::all_finished) {
                    if !self.is_worker() {
                        info!("all sessions finished, exiting");
                    }
                    break;
                }
                if self.now >= until {
                    warn!("drain timeout: closing {} open sessions", self.open_clients());
                    for i in 0..self.frontends.len() {
                        self.with_mode(i, |m, ctx| m.close_all(ctx));
                    }
                    break;
                }
            }
        }
        for f in self.frontends.iter_mut() {
            f.mode.flush_log();
        }
        self.publish_snapshot(0);
        self.publish_open_clients();
        if let Some(w) = self.workers.as_mut() {
            w.join();
        }
        // At exit the summary is logged whether or not it changed (the
        // workers published their last counts before they ended).
        if !self.is_worker() {
            let totals = self.pool_totals();
            for (i, p) in self.pools.iter().enumerate() {
                let backends = totals.as_ref().map_or(p.backends.as_slice(), |t| t[i].as_slice());
                info!("{}", crate::backend::usage_line(&p.name, backends));
            }
        }
        Ok(())
    }

    /// Hand one event to whoever owns its token.
    fn dispatch(&mut self, ev: &Event) {
        match ev.token() {
            SIGNALS => self.on_signals(),
            UPGRADE_LISTENER => self.on_upgrade_request(),
            UPGRADE_STREAM => self.on_upgrade_ready(),
            // One waker for every helper thread (mio allows one per poll):
            // each side takes what is ready for it.
            WAKER => {
                self.on_dns_answers();
                self.on_lookups_done();
                self.answer_stats_requests(None);
                self.on_commands();
            }
            ADMIN_LISTENER => {
                if let Some(a) = self.admin.as_mut() {
                    a.accept(self.poll.registry(), self.now);
                }
            }
            t => match Owner::of(t) {
                Owner::Listener { frontend } => self.accept_ready(frontend),
                Owner::Mode { frontend, key } if frontend < self.frontends.len() => {
                    self.with_mode(frontend, |m, ctx| m.event(key, ev, ctx));
                }
                Owner::Check { pool, key } => {
                    if let Some(p) = self.pools.get_mut(pool)
                        && let Some(c) = p.checker.as_mut()
                    {
                        c.on_event(key, ev, &mut p.backends, self.poll.registry());
                    }
                }
                Owner::Probe { frontend, key } => {
                    if let Some(f) = self.frontends.get_mut(frontend)
                        && let Some(pr) = f.prober.as_mut()
                    {
                        pr.on_event(key, ev, &mut f.policy, self.poll.registry());
                    }
                }
                Owner::Admin(key) => self.on_admin(key),
                Owner::Handshake(key) => self.on_handshake(key),
                Owner::Mode { .. } | Owner::Unknown => debug!("event for unknown token {t:?}"),
            },
        }
    }

    /// Client connections open in every frontend (what --max-connections limits).
    fn open_clients(&self) -> usize {
        self.frontends.iter().map(|f| f.mode.open_clients()).sum::<usize>() + self.handshakes.len()
    }

    /// Call frontend `i`'s mode, lending it its pool and the shared state.
    fn with_mode<R>(&mut self, i: usize, f: impl FnOnce(&mut dyn Mode, &mut Ctx) -> R) -> R {
        let front = &mut self.frontends[i];
        let pool = &mut self.pools[front.pool];
        let mut ctx = Ctx {
            registry: self.poll.registry(),
            backends: &mut pool.backends,
            policy: &mut front.policy,
            pool: &self.buffers,
            pipes: &self.pipes,
            now: self.now,
            frontend: i,
            timers: &mut self.timers,
            per_ip: &mut front.per_ip,
            stats: &mut front.stats,
        };
        f(front.mode.as_mut(), &mut ctx)
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if self.frontends.iter().any(|f| f.mode.has_ready_work()) {
            return Some(Duration::ZERO);
        }
        let retry = match self.accept_pause {
            Some(AcceptPause::OutOfDescriptors { retry_at }) => Some(retry_at),
            _ => None,
        };
        let handover = self.handover.as_ref().map(|h| h.until);
        let fixed = [self.next_stats, self.drain_until, retry, Some(self.next_tick), self.timers.next(), handover];
        let next = fixed.into_iter().chain(self.frontends.iter().map(Frontend::next_deadline)).flatten().min()?;
        // Round up to the next millisecond: epoll's resolution, and waking a
        // hair early would just spin once more.
        let wait = next.saturating_duration_since(Instant::now());
        Some(Duration::from_millis(wait.as_millis() as u64 + 1))
    }

    /// An admin connection spoke: answer its request once complete.
    fn on_admin(&mut self, key: usize) {
        let now = self.now;
        let Some(req) = self.admin.as_mut().and_then(|a| a.on_event(key, now)) else { return };
        self.serve_admin(req);
    }

    fn on_timers(&mut self) {
        let now = self.now;
        while let Some(d) = self.timers.pop_due(now) {
            self.on_deadline(d);
        }
        let frontends = &self.frontends;
        let live = self.open_clients();
        self.timers.compact(live, |d| match d.owner {
            TimerOwner::Mode(f) => frontends.get(f).is_some_and(|f| f.mode.waits_for(d.key, d.generation)),
            // Few and short-lived: kept until due.
            TimerOwner::Checks(_) | TimerOwner::Probes(_) => true,
        });
        for i in 0..self.frontends.len() {
            self.with_mode(i, |m, ctx| m.on_timers(ctx));
        }

        if now >= self.next_tick {
            self.next_tick = now + TICK;
            for i in 0..self.frontends.len() {
                self.with_mode(i, |m, ctx| m.sweep(ctx));
                self.frontends[i].per_ip.sweep(now);
            }
            if let Some(a) = self.admin.as_mut() {
                a.sweep(now);
            }
            self.publish_snapshot(0);
            self.answer_stats_requests(Some(TICK));
            // Workers share that state: the main reactor brings backends back.
            if !self.is_worker() {
                for p in self.pools.iter_mut() {
                    p.revive_due(now);
                }
            }
            self.pipes.trim();
            self.dns_tick();
            self.sweep_handshakes();
            self.upkeep_pools();
        }
        if let Some(at) = self.next_stats
            && now >= at
        {
            // Only when something changed: an idle proxy stays quiet.
            let totals = self.pool_totals();
            for (i, pool) in self.pools.iter_mut().enumerate() {
                if let Some(line) = pool.usage_if_changed(totals.as_ref().map(|t| t[i].as_slice())) {
                    info!("{line}");
                }
            }
            let every = self.global.stats_interval.unwrap_or(Duration::from_secs(5));
            self.next_stats = Some(at + every);
        }
        if self.handover.as_ref().is_some_and(|h| now >= h.until) {
            self.handover = None;
            warn!("binary upgrade: the new process did not say ready within {:?}; still serving", upgrade::READY_WAIT);
        }
        if let Some(AcceptPause::OutOfDescriptors { retry_at }) = self.accept_pause
            && now >= retry_at
        {
            self.set_accept_pause(None);
            for i in 0..self.frontends.len() {
                self.accept_ready(i);
            }
        }
    }

    /// Hand a due deadline to whoever armed it.
    fn on_deadline(&mut self, d: Deadline) {
        let now = self.now;
        match d.owner {
            TimerOwner::Mode(f) if f < self.frontends.len() => {
                self.with_mode(f, |m, ctx| m.on_deadline(d.key, d.generation, ctx));
            }
            TimerOwner::Checks(p) => {
                if let Some(pool) = self.pools.get_mut(p)
                    && let Some(c) = pool.checker.as_mut()
                {
                    let at = Tick { now, registry: self.poll.registry(), timers: &mut self.timers };
                    c.on_deadline(d.key, d.generation, at, &mut pool.backends);
                }
            }
            TimerOwner::Probes(f) => {
                let idle = self.open_clients() == 0;
                if let Some(front) = self.frontends.get_mut(f)
                    && let Some(pr) = front.prober.as_mut()
                {
                    let at = Tick { now, registry: self.poll.registry(), timers: &mut self.timers };
                    let backends = &self.pools[front.pool].backends;
                    pr.on_deadline((d.key, d.generation), at, idle, backends, &mut front.policy);
                }
            }
            TimerOwner::Mode(_) => {}
        }
    }

    /// Finish removals and replace dead spawned backends; tell the modes.
    fn upkeep_pools(&mut self) {
        for p in 0..self.pools.len() {
            let gone = self.pools[p].upkeep();
            self.sync_modes(p, &gone);
        }
    }

    /// The backends of pool `p` changed: the modes over it make room for new
    /// ones and drop what they kept for `gone` ones.
    fn sync_modes(&mut self, p: usize, gone: &[usize]) {
        let n = self.pools[p].backends.len();
        for f in self.frontends.iter_mut().filter(|f| f.pool == p) {
            f.mode.backends_changed(n);
            for &i in gone {
                f.mode.forget_backend(i);
            }
        }
    }
}
