//! Open-file limits: a proxied TCP session costs two descriptors, so the
//! number of sessions the process can hold is set by RLIMIT_NOFILE, not only
//! by `--max-connections`. At start the soft limit is raised to the hard one
//! (as nginx and HAProxy do) and the connection cap is lowered to what the
//! descriptors allow, so a full proxy pauses accepting cleanly instead of
//! failing backend connects with EMFILE (which would wrongly count against
//! healthy backends).

use log::{info, warn};

/// Raise the soft open-file limit to the hard limit; returns the limit in force.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    if rl.rlim_cur < rl.rlim_max {
        let raised = libc::rlimit { rlim_cur: rl.rlim_max, rlim_max: rl.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            info!("open-file limit raised from {} to {}", rl.rlim_cur, rl.rlim_max);
            return Some(rl.rlim_max);
        }
    }
    Some(rl.rlim_cur)
}

/// Client connections that fit in `nofile` descriptors when each costs two
/// and `reserved` are kept for listeners, pools, checks and the like.
pub fn sessions_that_fit(nofile: u64, reserved: u64) -> usize {
    // Keep at least a quarter of a tiny limit free, at most `reserved`.
    let reserve = reserved.min(nofile / 4);
    (nofile.saturating_sub(reserve) / 2) as usize
}

/// Descriptors open right now (inherited ones included), from /proc/self/fd.
fn open_descriptors() -> u64 {
    // The directory listing holds one descriptor of its own while it runs.
    std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1) as u64).unwrap_or(0)
}

/// Used when the descriptor limit cannot be read and no cap was given.
const FALLBACK_CAP: usize = 10_000;

/// `wanted`, lowered (with a warning) to what the descriptor limit allows
/// after the descriptors already open (a parent may have left some to us);
/// `wanted == 0` (no `--max-connections`) takes what fits, silently: a
/// default start has nothing to warn about.
pub fn cap_connections(wanted: usize, reserved: u64) -> usize {
    let Some(nofile) = raise_nofile_limit() else {
        return if wanted == 0 { FALLBACK_CAP } else { wanted };
    };
    let fit = sessions_that_fit(nofile.saturating_sub(open_descriptors()), reserved).max(1);
    if wanted == 0 {
        info!("max connections: what the open-file limit of {nofile} allows: using {fit}");
        fit
    } else if fit < wanted {
        warn!("--max-connections {wanted} needs more descriptors than the limit of {nofile} allows: using {fit}");
        fit
    } else {
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_session_after_the_reserve() {
        assert_eq!(sessions_that_fit(20_000, 64), 9_968);
        assert_eq!(sessions_that_fit(32, 64), 12);
        assert_eq!(sessions_that_fit(0, 64), 0);
    }
}
