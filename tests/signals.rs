//! Signals that must not stop lbproxy: SIGHUP (no reload yet) and SIGPIPE.
//! SIGINT/SIGTERM draining is tested in tcp_proxy.rs.

mod util;

use util::*;

#[test]
fn sighup_and_sigpipe_leave_sessions_and_the_listener_working() {
    let b = stream_backend(1);
    let mut lb = lbproxy("round_robin", &[b.addr], &[]);
    let mut s = connect(lb.addr);
    assert!(ask(&mut s, "MSG before").contains("count=1"), "session did not start");

    lb.signal(libc::SIGHUP);
    lb.wait_for_line("SIGHUP received: no configuration file to reload (started from flags); nothing changed");
    assert!(ask(&mut s, "MSG after-hup").contains("count=2 echo=after-hup"), "open session cut by SIGHUP");
    assert_eq!(who(lb.addr), 1, "new session after SIGHUP");

    // A signal is delivered the next time the process leaves the kernel, so
    // once it has served anything after kill(2) it has taken the SIGPIPE.
    lb.signal(libc::SIGPIPE);
    assert_eq!(who(lb.addr), 1, "new session after SIGPIPE");
    assert!(ask(&mut s, "MSG after-pipe").contains("count=3 echo=after-pipe"), "open session cut by SIGPIPE");
    assert!(lb.is_running(), "lbproxy exited: {:?}", lb.child.try_wait());

    // SIGTERM still drains after all that.
    lb.signal(libc::SIGTERM);
    lb.wait_for_line("stopped accepting");
    close_and_wait(s);
    let status = lb.wait_exit();
    assert!(status.success(), "exit status {status:?}");
}
