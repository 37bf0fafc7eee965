//! Host-name lookups for `/add` and `/rm`, off the reactor thread.
//!
//! The system resolver (`getaddrinfo`) blocks, for seconds when a DNS
//! server is slow or gone, and cannot be cancelled. So lookups run on one
//! thread of their own, one job at a time; the thread sends each result
//! back over a channel and wakes the reactor with the server's `mio::Waker`
//! (one per poll, shared with the DNS discovery thread). The queue is
//! bounded (`QUEUE`): past it, /add is answered 503.
//!
//! The thread is started on the first lookup. Dropping the `Resolver`
//! closes the job queue, and the thread ends after the lookup it is in;
//! it is not joined, since that lookup may hang for as long as the
//! resolver's own timeouts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};

use mio::Waker;

use super::routes::lookup;

/// Lookups waiting at most; one per admin connection is the most that can
/// be asked for at once.
const QUEUE: usize = super::MAX_CONNS;

/// A lookup asked for by admin connection `conn` (`serial` tells it from a
/// later connection that reuses the key).
pub struct Job {
    pub conn: usize,
    pub serial: u64,
    pub remove: bool,
    pub n: usize,
    pub hostnames: Vec<String>,
}

/// A job and what its lookup gave: every address, or the first error (it
/// names the host).
pub struct Done {
    pub job: Job,
    pub result: Result<Vec<SocketAddr>, String>,
}

pub struct Resolver {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
}

impl Resolver {
    /// Start the thread; it calls `waker` after each job.
    pub fn start(waker: Arc<Waker>) -> io::Result<Resolver> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let (results, done) = channel();
        std::thread::Builder::new().name("lbproxy-resolver".into()).spawn(move || {
            // Ends when the reactor drops its sender (or its receiver).
            for job in queue {
                let result = lookup(&job.hostnames);
                if results.send(Done { job, result }).is_err() {
                    return;
                }
                // A failed wake leaves the result queued: the next wake or
                // lookup takes it, and the connection's deadline bounds the wait.
                let _ = waker.wake();
            }
        })?;
        Ok(Resolver { jobs, done })
    }

    /// Queue a job; a full queue gives it back.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }

    /// The next finished lookup, if any (never blocks).
    pub fn next_done(&self) -> Option<Done> {
        // Empty, or the thread is gone: nothing to hand over.
        self.done.try_recv().ok()
    }
}
