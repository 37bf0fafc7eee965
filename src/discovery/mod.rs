//! Pools from DNS: names in a pool's `servers` (`host:port` for A/AAAA,
//! `_service._proto.name` for SRV) resolved again and again on one
//! discovery thread, so a slow or silent DNS server never stalls the
//! reactor. The reactor hands a pool's names over (`ask`), the thread
//! answers through a channel and wakes the reactor (`mio::Waker`), and the
//! reactor applies the answer to the pool as a diff, exactly like a reload.
//!
//! An answer is all or nothing: if any name of the pool fails or comes back
//! empty, the whole answer is an error and the pool keeps its last good set.

pub mod dns;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use log::warn;

use crate::config::BackendSpec;

/// How long one DNS question may take before the next server is asked.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(2);

/// A name in a pool's `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameSpec {
    /// `host:port`: every A and AAAA address of `host`, each a backend of `weight`.
    Host { host: String, port: u16, weight: u32 },
    /// `_service._proto.name`: the targets of the SRV record with its lowest
    /// priority, each with the record's port and weight (0 counts as 1).
    Srv { name: String },
}

impl NameSpec {
    /// Whether `s` names an SRV record (`_service._proto.name`, no port).
    pub fn is_srv(s: &str) -> bool {
        s.starts_with('_') && !s.contains(':') && s.split('.').nth(1).is_some_and(|p| p.starts_with('_'))
    }
}

impl fmt::Display for NameSpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            NameSpec::Host { host, port, weight: 1 } => write!(f, "{host}:{port}"),
            NameSpec::Host { host, port, weight } => write!(f, "{host}:{port}@{weight}"),
            NameSpec::Srv { name } => f.write_str(name),
        }
    }
}

/// What to resolve for one pool.
pub struct Job {
    pub pool: usize,
    pub names: Vec<NameSpec>,
    /// DNS servers to ask; empty: the system's (getaddrinfo for host names,
    /// /etc/resolv.conf's nameservers for SRV).
    pub resolvers: Vec<SocketAddr>,
}

/// The answer for one pool: its backends, or why there are none this time.
pub struct Resolved {
    pub pool: usize,
    pub result: Result<Vec<BackendSpec>, String>,
    /// The smallest TTL among the records, when the DNS said.
    pub ttl: Option<Duration>,
}

/// The discovery thread's two ends, held by the reactor.
pub struct Discovery {
    jobs: Sender<Job>,
    answers: Receiver<Resolved>,
}

impl Discovery {
    /// Start the thread; it calls `wake` after each answer.
    pub fn start(wake: Arc<mio::Waker>) -> std::io::Result<Discovery> {
        let (jobs, job_rx) = channel::<Job>();
        let (answer_tx, answers) = channel();
        std::thread::Builder::new().name("dns".into()).spawn(move || {
            // Ends when the reactor drops its sender.
            for job in job_rx {
                let (result, ttl) = resolve(&job);
                if answer_tx.send(Resolved { pool: job.pool, result, ttl }).is_err() {
                    return;
                }
                if let Err(e) = wake.wake() {
                    warn!("dns: cannot wake the reactor: {e}");
                }
            }
        })?;
        Ok(Discovery { jobs, answers })
    }

    pub fn ask(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Answers that arrived since the last call.
    pub fn answers(&self) -> Vec<Resolved> {
        self.answers.try_iter().collect()
    }
}

/// Resolve every name of a job; all or nothing.
pub fn resolve(job: &Job) -> (Result<Vec<BackendSpec>, String>, Option<Duration>) {
    let mut out: Vec<BackendSpec> = Vec::new();
    let mut ttl: Option<Duration> = None;
    let servers = if job.resolvers.is_empty() { dns::system_nameservers() } else { job.resolvers.clone() };
    for name in &job.names {
        let got = match name {
            NameSpec::Host { host, port, weight } => host_addrs(&job.resolvers, host, *port, *weight),
            NameSpec::Srv { name } => srv_addrs(&servers, &job.resolvers, name),
        };
        match got {
            Ok((specs, t)) if !specs.is_empty() => {
                ttl = [ttl, t].into_iter().flatten().min();
                for s in specs {
                    if !out.iter().any(|o| o.addr == s.addr) {
                        out.push(s);
                    }
                }
            }
            Ok(_) => return (Err(format!("{name}: empty answer")), None),
            Err(e) => return (Err(format!("{name}: {e}")), None),
        }
    }
    (Ok(out), ttl)
}

type Specs = (Vec<BackendSpec>, Option<Duration>);

fn host_addrs(resolvers: &[SocketAddr], host: &str, port: u16, weight: u32) -> Result<Specs, String> {
    if resolvers.is_empty() {
        // The system's way (getaddrinfo: /etc/hosts, nsswitch); no TTL.
        let addrs = (host, port).to_socket_addrs().map_err(|e| e.to_string())?;
        return Ok((addrs.map(|addr| BackendSpec { addr, weight }).collect(), None));
    }
    let a = dns::addresses(resolvers, host, QUESTION_TIMEOUT)?;
    Ok((a.records.into_iter().map(|ip| BackendSpec { addr: SocketAddr::new(ip, port), weight }).collect(), a.ttl))
}

fn srv_addrs(servers: &[SocketAddr], resolvers: &[SocketAddr], name: &str) -> Result<Specs, String> {
    let answer = dns::srv(servers, name, QUESTION_TIMEOUT)?;
    let Some(best) = answer.records.iter().map(|t| t.priority).min() else { return Ok((Vec::new(), answer.ttl)) };
    let mut out = Vec::new();
    let mut ttl = answer.ttl;
    for t in answer.records.iter().filter(|t| t.priority == best) {
        let weight = u32::from(t.weight).clamp(1, crate::config::MAX_WEIGHT);
        let (specs, t_ttl) = host_addrs(resolvers, &t.host, t.port, weight)?;
        ttl = [ttl, t_ttl].into_iter().flatten().min();
        out.extend(specs);
    }
    Ok((out, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_names_are_told_from_host_names() {
        assert!(NameSpec::is_srv("_http._tcp.app.test"));
        assert!(!NameSpec::is_srv("app.test:80"));
        assert!(!NameSpec::is_srv("_weird.example:80"));
        assert!(!NameSpec::is_srv("_only"));
    }

    #[test]
    fn a_name_that_does_not_resolve_fails_the_whole_answer() {
        let job = Job {
            pool: 0,
            names: vec![
                NameSpec::Host { host: "localhost".into(), port: 80, weight: 1 },
                NameSpec::Host { host: "no-such-host.invalid".into(), port: 80, weight: 1 },
            ],
            resolvers: Vec::new(),
        };
        let (result, _) = resolve(&job);
        assert!(result.unwrap_err().starts_with("no-such-host.invalid:80: "));
    }
}
