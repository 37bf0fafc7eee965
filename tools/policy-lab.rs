//! The policy lab: distribution and disruption of every policy, computed
//! from the policies' own code with seeded random keys (no network), so the
//! numbers are exact and repeatable.
//!
//! Run: `cargo run --release --bin policy-lab -- [--out DIR]`
//! Writes `distribution.csv`, `disruption.csv` and `report.md` to DIR, by
//! default a new `measurements/policy-lab/YYYY-MM-DD-HHMM/` (and points
//! `measurements/policy-lab/latest` at it). The report ends with the
//! Provenance section of `tools/provenance.py` (commit, date, machine).
//!
//! `policy-lab replay --trace access.csv [..]`: a recorded access log
//! replayed through the policies (`policy_lab/replay.rs`).
//! `policy-lab reproduce [..]`: published results (tower's peak EWMA,
//! Maglev, Envoy's ring against Maglev) run again (`policy_lab/reproduce.rs`).
//! Both write SVG plots with the `plot` binary built beside this one.

#[path = "policy_lab/replay.rs"]
mod replay;
#[path = "policy_lab/reproduce.rs"]
mod reproduce;

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

use lbproxy::backend::Backend;
use lbproxy::policy::rng::SplitMix64;
use lbproxy::policy::{Candidates, ConsistentHash, PickKey, PolicyKind, PolicyParams};

const REQUESTS: usize = 10_000;

fn backends(n: usize) -> Vec<Backend> {
    (0..n).map(|i| Backend::new(SocketAddr::from(([10, 0, 0, 1 + i as u8], 8080)))).collect()
}

fn keys(n: usize, seed: u64) -> Vec<PickKey> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| PickKey { client_ip: [127, 0, 0, 1].into(), request_hash: Some(rng.next_u64()) }).collect()
}

/// Share of each backend as a fraction, and the largest deviation from even.
fn summarize(counts: &[usize]) -> (Vec<f64>, f64) {
    let total: usize = counts.iter().sum();
    let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64).collect();
    let even = 1.0 / counts.len() as f64;
    let dev = shares.iter().map(|s| (s / even - 1.0).abs()).fold(0.0, f64::max);
    (shares, dev)
}

/// `python3 tools/provenance.py ARGS`: the one place that knows how to date a
/// run folder and describe the machine. Its output, or why there is none.
fn provenance(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("python3")
        .arg("tools/provenance.py")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run python3 tools/provenance.py: {e}"))?;
    if !out.status.success() {
        return Err(format!("tools/provenance.py {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `out`, or a new dated folder under `base`; whether it is the dated one.
fn out_dir(out: Option<PathBuf>, base: &str) -> Result<(PathBuf, bool), String> {
    let (dir, dated) = match out {
        Some(dir) => (dir, false),
        None => (PathBuf::from(provenance(&["--run-dir", base])?.trim()), true),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok((dir, dated))
}

/// Bars of `values` (legend `names`) per row of `dir/csv` into `dir/svg`,
/// by the `plot` binary beside this one.
fn draw(
    dir: &std::path::Path,
    csv: &str,
    svg: &str,
    values: &[String],
    names: &[String],
    title: &str,
    ylabel: &str,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is this binary: {e}"))?;
    let plot = exe.with_file_name("plot");
    if !plot.exists() {
        return Err(format!("{} not built (cargo build --release --bin plot)", plot.display()));
    }
    let out = std::process::Command::new(&plot)
        .args(["bars", "--csv"])
        .arg(dir.join(csv))
        .args(["--label", "policy", "--values", &values.join(","), "--names", &names.join(",")])
        .args(["--title", title, "--ylabel", ylabel, "--out"])
        .arg(dir.join(svg))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", plot.display()))?;
    if !out.status.success() {
        return Err(format!("plot {svg}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let result = match args.peek().cloned().as_deref() {
        Some("replay") => replay::main(args.skip(1)),
        Some("reproduce") => reproduce::main(args.skip(1)),
        _ => {
            lab(args);
            return;
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Distribution and disruption of every policy (the lab's first report).
fn lab(mut args: impl Iterator<Item = String>) {
    let mut out: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().expect("--out DIR"))),
            "-h" | "--help" => {
                println!("policy-lab [--out DIR]: distribution and disruption of every policy");
                println!("policy-lab replay --trace FILE [..]: a recorded access log through the policies");
                println!("policy-lab reproduce [..]: tower's peak EWMA, Maglev, Envoy's ring against Maglev");
                return;
            }
            other => {
                eprintln!("unknown argument \"{other}\"");
                std::process::exit(2);
            }
        }
    }
    let dated = out.is_none();
    let out = match out {
        Some(dir) => dir,
        None => match provenance(&["--run-dir", "measurements/policy-lab"]) {
            Ok(dir) => PathBuf::from(dir.trim()),
            Err(e) => {
                eprintln!("error: {e} (give --out DIR to write elsewhere)");
                std::process::exit(1);
            }
        },
    };
    fs::create_dir_all(&out).expect("create output dir");
    let params = PolicyParams::default();
    let classic = PolicyParams { vnodes: 9, ring_slots: Some(512), ..params };

    // Distribution: REQUESTS random keys over N = 2..6, each policy.
    let mut dist_csv = String::from("policy,n,max_deviation,shares\n");
    let mut dist_md = String::from("| policy | N=2 | N=3 | N=4 | N=5 | N=6 |\n|---|---|---|---|---|---|\n");
    let mut rows: Vec<(String, PolicyKind, PolicyParams)> =
        PolicyKind::ALL.iter().map(|&k| (k.name().to_string(), k, params)).collect();
    rows.push(("consistent_hash (classic 512 slots, 9 vnodes)".into(), PolicyKind::ConsistentHash, classic));
    for (name, kind, p) in &rows {
        let mut line = format!("| {name} |");
        for n in 2..=6 {
            let b = backends(n);
            let mut policy = kind.build(p);
            let mut counts = vec![0usize; n];
            for k in keys(REQUESTS, 42) {
                if let Some(i) = policy.pick(&k, &Candidates::new(&b, &[])) {
                    counts[i] += 1;
                }
            }
            let (shares, dev) = summarize(&counts);
            let shares_txt: Vec<String> = shares.iter().map(|s| format!("{:.3}", s)).collect();
            let _ = writeln!(dist_csv, "{name},{n},{dev:.4},{}", shares_txt.join(";"));
            let _ = write!(line, " ±{:.1}% |", dev * 100.0);
        }
        dist_md.push_str(&line);
        dist_md.push('\n');
    }

    // The classic lab's key hash, i + 2^i + 17 (mod 512), on the classic ring and on ours.
    let b = backends(3);
    let mut classic_ring = ConsistentHash::new(0, 9, Some(512));
    let mut counts = vec![0usize; 3];
    for i in 0..REQUESTS as u64 {
        let pos = (i + pow2_mod(i, 512) + 17) % 512;
        if let Some(o) = classic_ring.owner_at(&Candidates::new(&b, &[]), pos) {
            counts[o] += 1;
        }
    }
    let (lab_shares, _) = summarize(&counts);
    let mut ours = ConsistentHash::new(0, params.vnodes, None);
    let mut counts = vec![0usize; 3];
    for i in 0..REQUESTS as u64 {
        let k = PickKey { client_ip: [127, 0, 0, 1].into(), request_hash: Some(i) };
        if let Some(o) = lbproxy::policy::Policy::pick(&mut ours, &k, &Candidates::new(&b, &[])) {
            counts[o] += 1;
        }
    }
    let (our_shares, _) = summarize(&counts);

    // Ring evenness against virtual nodes: N = 3, 20 different address sets.
    let mut vn_md = String::from("| vnodes per backend | mean deviation | worst deviation |\n|---|---|---|\n");
    let mut vn_csv = String::from("vnodes,mean_deviation,worst_deviation\n");
    for vnodes in [9u32, 40, 100, 160, 320, 640, 1000] {
        let devs: Vec<f64> = (0..20u8)
            .map(|set| {
                let b: Vec<Backend> =
                    (0..3u8).map(|i| Backend::new(SocketAddr::from(([10, set, 0, 1 + i], 8080)))).collect();
                let mut p = ConsistentHash::new(0, vnodes, None);
                let mut counts = vec![0usize; 3];
                for k in keys(REQUESTS, 42) {
                    if let Some(i) = lbproxy::policy::Policy::pick(&mut p, &k, &Candidates::new(&b, &[])) {
                        counts[i] += 1;
                    }
                }
                summarize(&counts).1
            })
            .collect();
        let mean = devs.iter().sum::<f64>() / devs.len() as f64;
        let worst = devs.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(vn_md, "| {vnodes} | ±{:.1}% | ±{:.1}% |", mean * 100.0, worst * 100.0);
        let _ = writeln!(vn_csv, "{vnodes},{mean:.4},{worst:.4}");
    }

    // Disruption: remove one of N backends (a new, shorter list, as a
    // restart with one server fewer), then add it back.
    let mut disr_csv = String::from("policy,n,moved_on_remove,expected_on_remove,returned_on_readd\n");
    let mut disr_md = String::from(
        "| policy | N | keys moved when 1 removed | of those the removed one owned | back home after re-add |\n|---|---|---|---|---|\n",
    );
    for kind in [PolicyKind::IpHash, PolicyKind::ConsistentHash, PolicyKind::Maglev] {
        for n in [3usize, 5] {
            let ks = keys(REQUESTS, 7);
            let full = backends(n);
            let fewer: Vec<Backend> = full.iter().take(n - 1).cloned().collect();
            let owner = |list: &[Backend]| -> Vec<SocketAddr> {
                let mut p = kind.build(&params);
                ks.iter().map(|k| list[p.pick(k, &Candidates::new(list, &[])).expect("pick")].addr).collect()
            };
            let before = owner(&full);
            let after = owner(&fewer);
            let again = owner(&full);
            let removed = full[n - 1].addr;
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / REQUESTS as f64;
            let owned = before.iter().filter(|a| **a == removed).count() as f64 / REQUESTS as f64;
            let back = before.iter().zip(&again).filter(|(a, b)| a == b).count() as f64 / REQUESTS as f64;
            let _ = writeln!(disr_csv, "{},{n},{moved:.4},{owned:.4},{back:.4}", kind.name());
            let _ = writeln!(
                disr_md,
                "| {} | {n} | {:.1}% | {:.1}% | {:.1}% |",
                kind.name(),
                moved * 100.0,
                owned * 100.0,
                back * 100.0
            );
        }
    }

    let pct = |v: &[f64]| v.iter().map(|s| format!("{:.1}%", s * 100.0)).collect::<Vec<_>>().join(" / ");
    let report = format!(
        "# Policy lab: distribution and disruption\n\n\
         Made by `cargo run --release --bin policy-lab` from the policies' own code: {REQUESTS} seeded random \
         request keys, no network, so every figure is exact and repeatable.\n\n\
         ## Distribution: largest deviation from an even share, {REQUESTS} requests\n\n\
         Stateful policies (round robin, least requests, fewest connections with nothing held open) are \
         exact by construction; hashing and random policies show their statistical spread. sma, ewma and \
         p2c_peak_ewma get no latency samples here, so they rotate (or pick at random); how they follow \
         measured latency is in `measurements/policy-adaptivity`.\n\n{dist_md}\n\
         Exact shares per backend: `distribution.csv`.\n\n\
         ## Ring evenness against virtual nodes (N = 3, 20 address sets)\n\n\
         A backend's share on a ring of random points varies by about 1/sqrt(vnodes); this is the \
         price of consistent hashing that Maglev's table does not pay.\n\n{vn_md}\n\
         ## The classic lab ring and hash\n\n\
         - Classic key hash `i + 2^i + 17 (mod 512)` on the classic 512-slot ring with 9 virtual nodes, 3 backends, \
         keys i = 0..{REQUESTS}: {}.\n\
         - The same keys i = 0..{REQUESTS} hashed by lbproxy's seeded FNV-1a/splitmix64 on the default ring \
         (640 virtual nodes, 64-bit positions): {}.\n\n\
         The lab's 96%-on-one-server figure is not reproduced here: it needs the lab's own placement of \
         servers on the ring, which is not available. With lbproxy's placement even the weak key hash \
         spreads within a few points of even; the lesson that survives is in the table above: few virtual \
         nodes on a small ring spread unevenly.\n\n\
         ## Disruption: one of N backends removed, then added back\n\n\
         ip_hash (rendezvous hashing on backend addresses), the ring and Maglev each move about the removed \
         backend's own share (1/N); a `hash mod N` mapping would move most keys.\n\n{disr_md}\nRaw: `disruption.csv`.\n",
        pct(&lab_shares),
        pct(&our_shares)
    );
    fs::write(out.join("distribution.csv"), dist_csv).expect("write distribution.csv");
    fs::write(out.join("disruption.csv"), disr_csv).expect("write disruption.csv");
    fs::write(out.join("vnodes.csv"), vn_csv).expect("write vnodes.csv");
    let origin = provenance(&[]).unwrap_or_else(|e| format!("## Provenance\n\n- unknown: {e}\n"));
    let report = format!("{report}\n{origin}");
    fs::write(out.join("report.md"), &report).expect("write report.md");
    print!("{report}");
    if dated && let Err(e) = provenance(&["--publish", &out.display().to_string()]) {
        eprintln!("warning: {e}");
    }
}

/// 2^i mod m without overflow.
fn pow2_mod(i: u64, m: u64) -> u64 {
    let mut r = 1u64 % m;
    let mut base = 2u64 % m;
    let mut e = i;
    while e > 0 {
        if e & 1 == 1 {
            r = r * base % m;
        }
        base = base * base % m;
        e >>= 1;
    }
    r
}
