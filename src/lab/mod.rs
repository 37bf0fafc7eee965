//! The policy lab's simulation side, on the policies' own code: a recorded
//! access log read back as a trace (`trace`), and a discrete-event run of a
//! policy over virtual time with a latency model per backend (`sim`). The
//! `policy-lab` tool builds its replays and reproductions from these.

pub mod replay;
pub mod sim;
pub mod trace;
