//! The event loop: one thread, one `mio::Poll`.
//!
//! Readiness strategy (kept everywhere): every socket is registered once,
//! edge-triggered, for READABLE | WRITABLE, and never re-registered. Events
//! only set flags in the session's `Ready`; the session then works while the
//! flags it needs are set. So a full buffer stops reading simply by not
//! reading (the flag stays set and is acted on when the buffer drains), and
//! changing what we want costs no `epoll_ctl` call.
//!
//! Each session gets at most `READ_BUDGET` reads per turn. One that still has
//! work is queued in `ready_again` and driven after the next poll, which then
//! does not wait, so a fast transfer cannot starve the other sessions.
//!
//! Tokens are made in `tokens.rs`. In HTTP and redirect modes the sockets
//! belong to the `http` engine, which the reactor drives through the same loop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

mod membership;

use crate::admin::{self, AdminServer, route};
use crate::backend::{Backend, usage_table};
use crate::buffer::BufferPool;
use crate::checks::Checker;
use crate::config::Config;
use crate::connection::{ConnectCheck, Moved, Phase, Ready, Session, Step, check_connect, is_descriptor_exhaustion};
use crate::http::{ACCESS_LOG_HEADER, Ctx, HttpEngine};
use crate::policy::{Candidates, PickKey, Policy};
use crate::probes::Prober;
use crate::spawn::Spawner;
use crate::tokens::{ADMIN_LISTENER, LISTENER, Owner, SIGNALS};

/// Reads one session may do per turn (16 x 64 KiB = 1 MiB by default).
const READ_BUDGET: u32 = 16;
/// Free buffers kept for reuse; more are returned to the allocator. Large
/// enough that a few hundred busy connections do not free and re-zero
/// buffers on every request (measured: 4% of CPU at 64).
const POOL_KEEP_FREE: usize = 512;
/// After EMFILE/ENFILE with no session left to close, try accepting again after this.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How often housekeeping runs: HTTP pool idle timeouts and access log
/// flush, admin connection deadlines, backends whose removal finished,
/// spawned backends that died.
const TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptPause {
    MaxConnections,
    OutOfDescriptors { retry_at: Instant },
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    sessions: Slab<Session>,
    backends: Vec<Backend>,
    policy: Box<dyn Policy>,
    pool: BufferPool,
    config: Config,
    accept_pause: Option<AcceptPause>,
    /// Connect deadlines: (when, session key, attempt id).
    connect_deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_attempt: u64,
    ready_again: Vec<usize>,
    /// The HTTP/redirect engine; `None` in TCP mode.
    http: Option<HttpEngine>,
    /// Housekeeping: HTTP pool sweep, finished removals, dead spawned backends.
    next_tick: Instant,
    checker: Option<Checker>,
    admin: Option<AdminServer>,
    spawner: Option<Spawner>,
    /// Speed probes, while the policy wants them (fastest_ranked).
    prober: Option<Prober>,
    out_of_descriptors_logged: bool,
    started: Instant,
    next_stats: Option<Instant>,
    next_idle_sweep: Option<Instant>,
    drain_until: Option<Instant>,
    now: Instant,
}

/// Set up the listening socket: SO_REUSEADDR so a restart does not wait out
/// TIME_WAIT, and the configured backlog.
fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Why no backend connection could be started.
enum NoBackend {
    /// Every candidate failed or none is up.
    NoneLeft,
    /// The proxy itself is out of descriptors: no backend is to blame.
    OutOfDescriptors(io::Error),
}

/// Ask the policy, then connect; on an immediate failure mark it and ask
/// again without that backend, until one accepts the attempt or none is left.
fn open_backend(
    policy: &mut dyn Policy,
    backends: &mut [Backend],
    client_ip: IpAddr,
    tried: &mut Vec<usize>,
    now: Instant,
) -> Result<(usize, TcpStream), NoBackend> {
    let key = PickKey::ip(client_ip);
    loop {
        let idx = policy.pick(&key, &Candidates::new(backends, tried)).ok_or(NoBackend::NoneLeft)?;
        match TcpStream::connect(backends[idx].addr) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((idx, stream));
            }
            Err(e) if is_descriptor_exhaustion(&e) => return Err(NoBackend::OutOfDescriptors(e)),
            Err(e) => {
                backends[idx].note_connect_failure(now, &e);
                tried.push(idx);
            }
        }
    }
}

impl Reactor {
    pub fn bind(mut config: Config) -> io::Result<Reactor> {
        // Listeners, signals, epoll, admin, health checks and (HTTP) idle pools.
        let pooled = if config.mode == crate::config::Mode::Tcp { 0 } else { config.pool_size * config.backends.len() };
        let admin_conns = if config.admin.is_some() { admin::MAX_CONNS } else { 0 };
        let reserved = (64 + admin_conns + pooled + 2 * config.backends.len()) as u64;
        config.max_connections = crate::limits::cap_connections(config.max_connections, reserved);
        let poll = Poll::new()?;
        let mut listener = listen(config.listen, config.backlog)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen)))?;
        let local_addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        // SIGHUP is caught only so that it does not kill (its default action);
        // SIGPIPE is already ignored by the Rust runtime, so a write to a
        // closed peer is an EPIPE error, not death.
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        let now = Instant::now();
        let http = match config.http_settings() {
            None => None,
            Some(settings) => Some(HttpEngine::new(settings, config.backends.len(), open_access_log(&config)?)),
        };
        let admin = match config.admin {
            None => None,
            Some(addr) => {
                let mut l = listen(addr, 128)
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on admin address {addr}: {e}")))?;
                poll.registry().register(&mut l, ADMIN_LISTENER, Interest::READABLE)?;
                info!("admin API on http://{}/ (dashboard), /stats, /metrics", l.local_addr()?);
                Some(AdminServer::new(l, config.admin_token.clone()))
            }
        };
        let backends =
            config.backends.iter().map(|b| make_backend(&config, b.addr, false).with_weight(b.weight)).collect();
        let mut reactor = Reactor {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            sessions: Slab::with_capacity(1024),
            backends,
            policy: config.policy.build(&config.params),
            pool: BufferPool::new(config.buffer_size, POOL_KEEP_FREE),
            accept_pause: None,
            connect_deadlines: BinaryHeap::new(),
            next_attempt: 0,
            ready_again: Vec::new(),
            http,
            next_tick: now + TICK,
            checker: config.health.clone().map(|h| Checker::new(h, now)),
            admin,
            spawner: config.spawn_cmd.clone().map(Spawner::new),
            prober: None,
            out_of_descriptors_logged: false,
            started: now,
            next_stats: config.stats_interval.map(|d| now + d),
            next_idle_sweep: config.idle_timeout.map(|d| now + sweep_period(d)),
            drain_until: None,
            now,
            config,
        };
        reactor.update_prober();
        for _ in 0..reactor.config.replicas.unwrap_or(0) {
            reactor.spawn_backend()?;
        }
        Ok(reactor)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Run until a signal and the drain that follows it. Returns `Ok` on a
    /// clean shutdown.
    pub fn run(mut self) -> io::Result<()> {
        let backends: Vec<String> = self.backends.iter().map(|b| b.addr.to_string()).collect();
        info!(
            "lbproxy {} listening on {}, mode {}, policy {}, backends [{}]",
            env!("CARGO_PKG_VERSION"),
            self.local_addr,
            self.config.mode.name(),
            self.config.policy,
            backends.join(", ")
        );
        let mut events = Events::with_capacity(1024);
        let mut again = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.now = Instant::now();

            std::mem::swap(&mut again, &mut self.ready_again);
            for key in again.drain(..) {
                self.drive(key);
            }
            self.with_http(|h, ctx| h.run_ready_again(ctx));
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_ready(),
                    SIGNALS => self.on_signals(),
                    ADMIN_LISTENER => {
                        if let Some(a) = self.admin.as_mut() {
                            a.accept(self.poll.registry(), self.now);
                        }
                    }
                    t => match Owner::of(t) {
                        Owner::TcpClient(key) => {
                            if let Some(s) = self.sessions.get_mut(key) {
                                s.client_ready.absorb(ev);
                                self.drive(key);
                            }
                        }
                        Owner::TcpBackend(key) => {
                            if let Some(s) = self.sessions.get_mut(key) {
                                s.backend_ready.absorb(ev);
                                self.drive(key);
                            }
                        }
                        Owner::HttpClient(key) => {
                            self.with_http(|h, ctx| h.client_event(key, ev, ctx));
                        }
                        Owner::HttpBackend(key) => {
                            self.with_http(|h, ctx| h.conn_event(key, ev, ctx));
                        }
                        Owner::Check(key) => {
                            if let Some(c) = self.checker.as_mut() {
                                c.on_event(key, ev, &mut self.backends, self.poll.registry());
                            }
                        }
                        Owner::Admin(key) => self.on_admin(key),
                        Owner::Probe(key) => {
                            if let Some(p) = self.prober.as_mut() {
                                p.on_event(key, ev, self.policy.as_mut(), self.poll.registry());
                            }
                        }
                    },
                }
            }
            self.on_timers();
            if self.http.as_mut().is_some_and(HttpEngine::take_out_of_descriptors) {
                self.pause_for_descriptors(&"a backend connect ran out of descriptors");
            }
            if self.accept_pause == Some(AcceptPause::MaxConnections)
                && self.open_clients() < self.config.max_connections
            {
                self.resume_accept();
            }

            if let Some(until) = self.drain_until {
                if self.open_clients() == 0 {
                    info!("all sessions finished, exiting");
                    break;
                }
                if self.now >= until {
                    warn!("drain timeout: closing {} open sessions", self.open_clients());
                    self.with_http(|h, ctx| h.close_all(ctx));
                    let keys: Vec<usize> = self.sessions.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.end_session(k, true);
                    }
                    break;
                }
            }
        }
        self.with_http(|h, _| h.flush_log());
        info!("{}", usage_table(&self.backends));
        Ok(())
    }

    /// Client connections open in either mode (what --max-connections limits).
    fn open_clients(&self) -> usize {
        self.sessions.len() + self.http.as_ref().map_or(0, HttpEngine::open_clients)
    }

    /// Lend the HTTP engine the shared state for one call.
    fn with_http<R>(&mut self, f: impl FnOnce(&mut HttpEngine, &mut Ctx) -> R) -> Option<R> {
        let http = self.http.as_mut()?;
        let mut ctx = Ctx {
            registry: self.poll.registry(),
            backends: &mut self.backends,
            policy: self.policy.as_mut(),
            pool: &self.pool,
            now: self.now,
        };
        Some(f(http, &mut ctx))
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready_again.is_empty() || self.http.as_ref().is_some_and(HttpEngine::has_ready_work) {
            return Some(Duration::ZERO);
        }
        let retry = match self.accept_pause {
            Some(AcceptPause::OutOfDescriptors { retry_at }) => Some(retry_at),
            _ => None,
        };
        let next = [
            self.connect_deadlines.peek().map(|Reverse((t, _, _))| *t),
            self.next_stats,
            self.next_idle_sweep,
            self.drain_until,
            retry,
            Some(self.next_tick),
            self.checker.as_ref().map(Checker::next_deadline),
            self.prober.as_ref().map(Prober::next_deadline),
            self.backends.iter().filter_map(Backend::down_until).min(),
            self.http.as_ref().and_then(HttpEngine::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up to the next millisecond: epoll's resolution, and waking a
        // hair early would just spin once more.
        let wait = next.saturating_duration_since(Instant::now());
        Some(Duration::from_millis(wait.as_millis() as u64 + 1))
    }

    fn accept_ready(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else { return };
            if self.accept_pause.is_some() {
                return;
            }
            if self.open_clients() >= self.config.max_connections {
                warn!("max connections ({}) reached: pausing accept", self.config.max_connections);
                self.accept_pause = Some(AcceptPause::MaxConnections);
                return;
            }
            match listener.accept() {
                Ok((stream, addr)) => {
                    self.out_of_descriptors_logged = false;
                    if self.http.is_some() {
                        self.with_http(|h, ctx| h.accept(stream, addr, ctx));
                    } else {
                        self.start_session(stream, addr);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_descriptor_exhaustion(&e) => {
                    self.pause_for_descriptors(&format_args!("accept failed: {e}"));
                    return;
                }
                // ECONNABORTED and friends: that client is gone, the next may not be.
                Err(e) => debug!("accept error: {e}"),
            }
        }
    }

    /// Out of descriptors: stop accepting for a moment (sessions that end
    /// give some back). Logged once per episode: the retry would repeat it.
    fn pause_for_descriptors(&mut self, why: &dyn std::fmt::Display) {
        if !self.out_of_descriptors_logged {
            warn!("{why}; pausing accept until a session closes");
            self.out_of_descriptors_logged = true;
        }
        self.accept_pause = Some(AcceptPause::OutOfDescriptors { retry_at: self.now + ACCEPT_RETRY });
    }

    fn resume_accept(&mut self) {
        if self.accept_pause.take().is_some() {
            info!("resuming accept ({} sessions open)", self.open_clients());
            self.accept_ready();
        }
    }

    fn start_session(&mut self, mut client: TcpStream, client_addr: SocketAddr) {
        let _ = client.set_nodelay(true);
        let mut tried = Vec::new();
        let (idx, mut backend) =
            match open_backend(self.policy.as_mut(), &mut self.backends, client_addr.ip(), &mut tried, self.now) {
                Ok(pair) => pair,
                Err(NoBackend::NoneLeft) => {
                    warn!("no backend available for client {client_addr}: closing it");
                    return;
                }
                Err(NoBackend::OutOfDescriptors(e)) => {
                    self.pause_for_descriptors(&format_args!(
                        "client {client_addr}: no descriptor for its backend: {e}"
                    ));
                    return;
                }
            };
        let entry = self.sessions.vacant_entry();
        let key = entry.key();
        let registry = self.poll.registry();
        let both = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = registry
            .register(&mut client, Owner::TcpClient(key).token(), both)
            .and_then(|_| registry.register(&mut backend, Owner::TcpBackend(key).token(), both))
        {
            warn!("cannot register client {client_addr}: {e}");
            let _ = registry.deregister(&mut client);
            return;
        }
        self.backends[idx].stats.active += 1;
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        self.connect_deadlines.push(Reverse((self.now + self.config.connect_timeout, key, attempt)));
        entry.insert(Session {
            client,
            client_addr,
            client_ready: Ready::default(),
            backend,
            backend_ready: Ready::default(),
            backend_idx: idx,
            phase: Phase::Connecting { since: self.now, attempt },
            up: Default::default(),
            down: Default::default(),
            tried,
            last_active: self.now,
            awaiting_first_byte: Some(self.now),
        });
        debug!("client {client_addr} -> backend {} (session {key})", self.backends[idx].addr);
    }

    /// Do whatever work the session's readiness allows.
    fn drive(&mut self, key: usize) {
        let Some(s) = self.sessions.get_mut(key) else { return };
        if let Phase::Connecting { since, .. } = s.phase {
            // Pending also when only the client spoke: its bytes wait in the kernel.
            match check_connect(&s.backend, &mut s.backend_ready) {
                ConnectCheck::Pending => return,
                ConnectCheck::Failed(e) => {
                    self.connect_failed(key, e);
                    return;
                }
                ConnectCheck::Connected => {
                    s.phase = Phase::Proxying;
                    let b = &mut self.backends[s.backend_idx];
                    b.stats.total += 1;
                    b.note_connect_success();
                    debug!("session {key}: connected to {} in {:?}", b.addr, self.now - since);
                }
            }
        }
        let mut moved = Moved::default();
        let step = s.step(&self.pool, READ_BUDGET, &mut moved);
        if moved.up + moved.down > 0 {
            s.last_active = self.now;
            let st = &mut self.backends[s.backend_idx].stats;
            st.bytes_up += moved.up;
            st.bytes_down += moved.down;
            if moved.down > 0
                && let Some(t) = s.awaiting_first_byte.take()
            {
                self.policy.observe(s.backend_idx, self.now.saturating_duration_since(t), self.now);
            }
        }
        match step {
            Step::Open { more: true } => self.ready_again.push(key),
            Step::Open { more: false } => {}
            Step::Finished => self.end_session(key, false),
            Step::Failed(e) => {
                debug!("session {key} ({}): {e}; closing both sides", s.client_addr);
                self.end_session(key, true);
            }
        }
    }

    /// The backend refused or timed out: count it and try the next one.
    fn connect_failed(&mut self, key: usize, err: io::Error) {
        let Some(s) = self.sessions.get_mut(key) else { return };
        let failed = s.backend_idx;
        let b = &mut self.backends[failed];
        b.stats.active -= 1;
        b.note_connect_failure(self.now, &format_args!("{err} (client {})", s.client_addr));
        s.tried.push(failed);
        // The old socket is closed (and so leaves epoll) when replaced below.

        let (idx, mut backend) =
            match open_backend(self.policy.as_mut(), &mut self.backends, s.client_addr.ip(), &mut s.tried, self.now) {
                Ok(pair) => pair,
                Err(NoBackend::NoneLeft) => {
                    warn!("no backend accepted client {} ({} tried): closing it", s.client_addr, s.tried.len());
                    self.remove_unconnected(key);
                    return;
                }
                Err(NoBackend::OutOfDescriptors(e)) => {
                    let why = format!("client {}: no descriptor for its backend: {e}", s.client_addr);
                    self.remove_unconnected(key);
                    self.pause_for_descriptors(&why);
                    return;
                }
            };
        if let Err(e) = self.poll.registry().register(
            &mut backend,
            Owner::TcpBackend(key).token(),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("cannot register backend socket: {e}");
            self.remove_unconnected(key);
            return;
        }
        self.backends[idx].stats.active += 1;
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        self.connect_deadlines.push(Reverse((self.now + self.config.connect_timeout, key, attempt)));
        s.backend = backend;
        s.backend_idx = idx;
        s.backend_ready = Ready::default();
        s.phase = Phase::Connecting { since: self.now, attempt };
        s.awaiting_first_byte = Some(self.now);
    }

    /// Drop a session whose backend `active` count was already given back.
    fn remove_unconnected(&mut self, key: usize) {
        let s = self.sessions.remove(key);
        s.close(false);
        self.resume_accept();
    }

    fn end_session(&mut self, key: usize, abort: bool) {
        // No explicit deregister: closing a descriptor removes it from epoll,
        // and two `epoll_ctl` calls are a real share of a short session.
        let Some(s) = self.sessions.try_remove(key) else {
            return;
        };
        self.backends[s.backend_idx].stats.active -= 1;
        s.close(abort);
        self.resume_accept();
    }

    /// Run speed probes exactly while the policy wants them.
    pub(super) fn update_prober(&mut self) {
        if !self.policy.wants_probes() {
            self.prober = None;
        } else if self.prober.is_none() {
            let c = &self.config;
            self.prober = Some(Prober::new(c.probe_path.clone(), c.probe_interval, self.now));
        }
    }

    /// An admin connection spoke: answer its request once complete.
    fn on_admin(&mut self, key: usize) {
        let now = self.now;
        let Some(req) = self.admin.as_mut().and_then(|a| a.on_event(key, now)) else { return };
        let reply = match route(&req.method, &req.path, &req.body) {
            Ok(cmd) => self.execute(cmd),
            Err(reply) => reply,
        };
        if let Some(a) = self.admin.as_mut() {
            a.answer(req.conn, &reply, now);
        }
    }

    fn on_signals(&mut self) {
        for sig in self.signals.pending() {
            if sig == SIGHUP {
                warn!("SIGHUP received: reload is not supported yet; ignoring");
                continue;
            }
            if self.drain_until.is_some() {
                warn!("second signal {sig}: exiting now");
                self.drain_until = Some(self.now);
                continue;
            }
            // Close the listener before saying so: new clients are refused from here on.
            if let Some(mut l) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
            info!(
                "signal {sig}: stopped accepting; waiting up to {:?} for {} sessions",
                self.config.drain_timeout,
                self.sessions.len()
            );
            self.drain_until = Some(self.now + self.config.drain_timeout);
            self.with_http(|h, ctx| h.start_drain(ctx));
        }
    }

    fn on_timers(&mut self) {
        let now = self.now;
        self.with_http(|h, ctx| h.on_timers(ctx));
        if let Some(c) = self.checker.as_mut() {
            c.on_timers(now, &mut self.backends, self.poll.registry());
        }
        let idle = self.open_clients() == 0;
        if let Some(p) = self.prober.as_mut() {
            p.on_timers(now, idle, &self.backends, self.policy.as_mut(), self.poll.registry());
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.with_http(|h, ctx| h.sweep(ctx));
            if let Some(a) = self.admin.as_mut() {
                a.sweep(now);
            }
            self.upkeep_membership();
        }
        while let Some(&Reverse((deadline, key, attempt))) = self.connect_deadlines.peek() {
            if deadline > now {
                break;
            }
            self.connect_deadlines.pop();
            let stale = !matches!(
                self.sessions.get(key).map(|s| s.phase),
                Some(Phase::Connecting { attempt: a, .. }) if a == attempt
            );
            if !stale {
                let after = self.config.connect_timeout;
                self.connect_failed(key, io::Error::new(ErrorKind::TimedOut, format!("no answer within {after:?}")));
            }
        }
        for b in self.backends.iter_mut() {
            b.revive_if_due(now);
        }
        if let Some(at) = self.next_stats
            && now >= at
        {
            info!("{}", usage_table(&self.backends));
            let every = self.config.stats_interval.unwrap_or(Duration::from_secs(5));
            self.next_stats = Some(at + every);
        }
        if let (Some(at), Some(idle)) = (self.next_idle_sweep, self.config.idle_timeout)
            && now >= at
        {
            let expired: Vec<usize> =
                self.sessions.iter().filter(|(_, s)| now - s.last_active >= idle).map(|(k, _)| k).collect();
            for k in expired {
                debug!("session {k}: idle for {idle:?}, closing");
                self.end_session(k, false);
            }
            self.next_idle_sweep = Some(now + sweep_period(idle));
        }
        if let Some(AcceptPause::OutOfDescriptors { retry_at }) = self.accept_pause
            && now >= retry_at
        {
            self.accept_pause = None;
            self.accept_ready();
        }
    }
}

/// A backend as configured: failure marking, and health thresholds when
/// checks are on. `start_down`: no traffic until `rise` checks pass.
fn make_backend(config: &Config, addr: SocketAddr, start_down: bool) -> Backend {
    let b = Backend::with_fail_policy(addr, config.fail_policy);
    match &config.health {
        Some(h) => b.with_health(h.rise, h.fall, start_down),
        None => b,
    }
}

/// Open the access log for appending; a new file gets the CSV header.
fn open_access_log(config: &Config) -> io::Result<Option<std::fs::File>> {
    let Some(path) = &config.access_log else {
        return Ok(None);
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open access log {}: {e}", path.display())))?;
    if f.metadata()?.len() == 0 {
        use std::io::Write;
        writeln!(f, "{ACCESS_LOG_HEADER}")?;
    }
    Ok(Some(f))
}

/// Idle timeouts are checked a few times per timeout, at most once a second.
fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}
