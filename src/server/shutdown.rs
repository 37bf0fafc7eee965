//! Signals and the drain that follows SIGINT/SIGTERM (or a binary upgrade).

use log::{info, warn};
use signal_hook::consts::{SIGHUP, SIGUSR1};

use super::workers::{Command, Workers};
use super::{Server, listeners};

impl Server {
    pub(super) fn on_signals(&mut self) {
        let pending: Vec<i32> = self.signals.as_mut().map(|s| s.pending().collect()).unwrap_or_default();
        for sig in pending {
            if sig == SIGHUP {
                match self.reload() {
                    Ok(changes) => info!("SIGHUP received: configuration reloaded ({} changes)", changes.0.len()),
                    Err(e) => warn!("SIGHUP received: {e}; nothing changed"),
                }
                continue;
            }
            if sig == SIGUSR1 {
                for f in self.frontends.iter_mut() {
                    match f.mode.reopen_logs() {
                        Some(Ok(path)) => info!("SIGUSR1: access log {} reopened", path.display()),
                        Some(Err(e)) => warn!("SIGUSR1: {e}; still writing to the file open before"),
                        None => {}
                    }
                }
                // After ours: the new file has its header before any worker opens it.
                if let Some(w) = self.workers.as_ref() {
                    w.send(|| Command::ReopenLogs);
                }
                continue;
            }
            if self.drain_until.is_some() {
                warn!("second signal {sig}: exiting now");
                self.drain_until = Some(self.now);
                if let Some(w) = self.workers.as_ref() {
                    w.send(|| Command::Drain);
                }
                continue;
            }
            self.start_drain(&format!("signal {sig}"), true);
        }
    }

    /// Stop accepting, then let open sessions finish for --drain-timeout.
    /// `refuse`: new clients are refused (not when a new process took the
    /// listeners over).
    pub(super) fn start_drain(&mut self, why: &str, refuse: bool) {
        // Close the listeners before saying so: new clients are refused from
        // here on (with workers, the socket is stopped for all of them).
        // Not while a new process holds the same sockets (a handover under way).
        // The main reactor holds every socket, the workers' own included (reuseport).
        let stop_for_all = refuse && self.reactors > 1 && !self.is_worker() && self.handover.is_none();
        for f in self.frontends.iter_mut() {
            if let Some(mut sockets) = f.listener.take() {
                let _ = sockets.deregister(&self.poll, self.exclusive);
                if stop_for_all {
                    sockets.all().for_each(listeners::refuse_new);
                }
            }
        }
        if let Some(w) = self.workers.as_ref() {
            w.send(|| Command::Drain);
        }
        let drain = self.global.drain_timeout;
        let elsewhere = |i: usize| self.workers.as_ref().map_or(0, |w| w.open_on_frontend(i));
        let per_frontend: Vec<String> = (self.frontends.iter().enumerate())
            .map(|(i, f)| (f, f.mode.open_clients() + elsewhere(i)))
            .filter(|&(_, n)| n > 0)
            .map(|(f, n)| format!("{} ({}): {n}", f.name, f.config.mode.name()))
            .collect();
        let detail = if per_frontend.is_empty() { String::new() } else { format!(" [{}]", per_frontend.join(", ")) };
        let open = self.open_clients() + self.workers.as_ref().map_or(0, Workers::open_clients);
        info!("{why}: stopped accepting; waiting up to {drain:?} for {open} sessions{detail}");
        self.drain_until = Some(self.now + drain);
        for i in 0..self.frontends.len() {
            self.frontends[i].mode.start_drain();
        }
    }
}
