//! cpu-sampler: CPU and memory over time, one line per interval.
//!
//! Run: `cargo run --release --bin cpu-sampler -- --interval 1s --output cpu_usage.txt [--pid N ...] [--duration 60s] [--samples N]`
//!
//! The output is CSV with a header naming the columns:
//! `timestamp,total_pct,cpu0_pct,...,pid_N_cpu_pct,pid_N_rss_kib,...`
//! (timestamp in Unix seconds; a process's CPU % is of one core, so a busy
//! two-thread process can show 200). Each line is flushed as it is written,
//! so nothing is lost when the sampler is killed. A watched process that
//! exits is reported once on stderr; its columns stay empty from then on and
//! the others keep being sampled. Stops on SIGINT/SIGTERM or after --duration.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use lbproxy::config::parse_duration;
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};

#[derive(Parser)]
#[command(
    name = "cpu-sampler",
    version,
    about = "Sample total, per-core and per-process CPU % and memory to a CSV file"
)]
struct Args {
    /// Time between samples.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// File to write (replaced if it exists).
    #[arg(long, default_value = "cpu_usage.txt")]
    output: PathBuf,
    /// A process to watch; repeat for several.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many sample lines.
    #[arg(long)]
    samples: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.interval < Duration::from_millis(50) {
        eprintln!("error: --interval {:?} is too short (at least 50ms)", args.interval);
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut out = File::create(&args.output)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", args.output.display())))?;

    let mut sys = System::new().map_err(|e| io::Error::other(format!("cannot read system statistics: {e}")))?;
    sys.refresh_cpu_usage();
    let pids: Vec<Pid> = args.pids.iter().map(|&p| Pid::from_u32(p)).collect();
    let refresh_procs = |sys: &mut System| {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
    };
    // sysinfo rates a process's CPU from the refresh before, and only when
    // refreshes are far enough apart: the first finds the process, the
    // second (after the minimum interval) sets the baseline of the first sample.
    refresh_procs(&mut sys);
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
    refresh_procs(&mut sys);
    for (pid, raw) in pids.iter().zip(&args.pids) {
        if sys.process(*pid).is_none() {
            eprintln!("warning: process {raw} does not exist; its columns stay empty");
        }
    }

    let mut header = String::from("timestamp,total_pct");
    for i in 0..sys.cpus().len() {
        header.push_str(&format!(",cpu{i}_pct"));
    }
    for p in &args.pids {
        header.push_str(&format!(",pid_{p}_cpu_pct,pid_{p}_rss_kib"));
    }
    writeln!(out, "{header}")?;
    out.flush()?;

    let started = Instant::now();
    let mut gone = vec![false; pids.len()];
    let mut next = started + args.interval;
    let mut written = 0u64;
    loop {
        // Sleep in small steps so a signal ends the run promptly.
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
        next += args.interval;
        sys.refresh_cpu_usage();
        refresh_procs(&mut sys);
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let mut line = format!("{ts:.3},{:.1}", sys.global_cpu_usage());
        for cpu in sys.cpus() {
            line.push_str(&format!(",{:.1}", cpu.usage()));
        }
        for (k, pid) in pids.iter().enumerate() {
            // An exited child that nobody reaped yet is a zombie: count it as gone.
            match sys.process(*pid).filter(|p| p.status() != ProcessStatus::Zombie) {
                Some(p) => line.push_str(&format!(",{:.1},{}", p.cpu_usage(), p.memory() / 1024)),
                None => {
                    if !gone[k] {
                        gone[k] = true;
                        eprintln!("process {pid} exited; still sampling the rest");
                    }
                    line.push_str(",,");
                }
            }
        }
        writeln!(out, "{line}")?;
        out.flush()?;
        written += 1;
        let enough = args.samples.is_some_and(|n| written >= n);
        if enough || args.duration.is_some_and(|d| started.elapsed() >= d) || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}
