//! `policy-lab replay --trace access.csv`: a recorded access log replayed
//! through every policy (or `--policies a,b`), each request at its recorded
//! time with its recorded key, answered in a time drawn from what its
//! backend was recorded to take; deterministic for `--seed`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use lbproxy::lab::replay::{KeyFrom, replay, to_csv};
use lbproxy::lab::trace;
use lbproxy::policy::{PolicyKind, PolicyParams};

use super::{draw, out_dir, provenance};

const USAGE: &str = "policy-lab replay --trace FILE [--policies P,P,..] [--seed N] [--key client|path] [--out DIR]";

pub fn main(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut trace_path, mut out, mut seed, mut key) = (None, None, 0u64, KeyFrom::Client);
    let mut kinds: Vec<PolicyKind> = PolicyKind::ALL.to_vec();
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value ({USAGE})"));
        match a.as_str() {
            "--trace" => trace_path = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--seed" => seed = value()?.parse().map_err(|_| format!("--seed: not a number ({USAGE})"))?,
            "--key" => {
                key = match value()?.as_str() {
                    "client" => KeyFrom::Client,
                    "path" => KeyFrom::Path,
                    other => return Err(format!("--key \"{other}\": expected client or path")),
                }
            }
            "--policies" => {
                kinds = value()?.split(',').map(str::parse).collect::<Result<_, String>>()?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument \"{other}\" ({USAGE})")),
        }
    }
    let trace_path = trace_path.ok_or_else(|| format!("--trace FILE is required ({USAGE})"))?;
    let text = fs::read_to_string(&trace_path).map_err(|e| format!("cannot read {}: {e}", trace_path.display()))?;
    let t = trace::parse(&text, &trace_path.display().to_string())?;
    let (out, dated) = out_dir(out, "measurements/policy-lab-replay")?;
    let params = PolicyParams { seed, ..PolicyParams::default() };
    let results = replay(&t, &kinds, &params, key);
    let csv = to_csv(&t, &results);
    fs::write(out.join("replay.csv"), &csv).map_err(|e| format!("write replay.csv: {e}"))?;

    let shares: Vec<String> = t.backends.iter().map(|b| format!("share_{b}")).collect();
    let names: Vec<String> = t.backends.iter().map(|b| b.to_string()).collect();
    let plots = [
        draw(&out, "replay.csv", "shares.svg", &shares, &names, "Share of the requests per backend", "share"),
        draw(
            &out,
            "replay.csv",
            "latency.svg",
            &["mean_ms".into(), "p99_ms".into(), "p999_ms".into()],
            &["mean".into(), "p99".into(), "p99.9".into()],
            "Response time in the replay",
            "ms",
        ),
    ];
    let report = report(&trace_path, &t, &results, key, seed, &plots);
    let origin = provenance(&[]).unwrap_or_else(|e| format!("## Provenance\n\n- unknown: {e}\n"));
    fs::write(out.join("report.md"), format!("{report}\n{origin}")).map_err(|e| format!("write report.md: {e}"))?;
    print!("{report}");
    if dated && let Err(e) = provenance(&["--publish", &out.display().to_string()]) {
        eprintln!("warning: {e}");
    }
    Ok(())
}

/// How many different keys the trace has.
fn distinct(t: &trace::Trace, key: KeyFrom) -> usize {
    let mut keys: Vec<String> = t
        .requests
        .iter()
        .map(|r| match key {
            KeyFrom::Client => r.client.to_string(),
            KeyFrom::Path => r.path.split('?').next().unwrap_or("").to_string(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

fn report(
    path: &Path,
    t: &trace::Trace,
    results: &[lbproxy::lab::replay::PolicyResult],
    key: KeyFrom,
    seed: u64,
    plots: &[Result<(), String>],
) -> String {
    let span = t.requests.last().map_or(0.0, |r| r.at.as_secs_f64());
    let mut md = format!(
        "# Policy lab: replay of {}\n\n\
         Made by `cargo run --release --bin policy-lab -- replay --trace {} --seed {seed}{}`: {} requests over \
         {span:.1} s to {} backends, replayed through each policy's own code at their recorded times and keys \
         (the {}). Each answer takes a time drawn (seeded) from what its backend was recorded to take; a \
         backend keeps its recorded times whatever load the policy sends it, so the figures show where each \
         policy sends traffic, not the queueing a different spread would cause. Keys moved: the share of the \
         trace's {} distinct keys on another backend once the last backend ({}) is removed (for policies that \
         do not hash, a key's backend follows the order of arrival, so most keys move).\n\n\
         | policy | Jain | max/mean | mean | p99 | p99.9 | keys moved | shares |\n|---|---|---|---|---|---|---|---|\n",
        path.display(),
        path.display(),
        if key == KeyFrom::Path { " --key path" } else { "" },
        t.requests.len(),
        t.backends.len(),
        if key == KeyFrom::Path { "path" } else { "client address" },
        distinct(t, key),
        t.backends.last().map(|b| b.to_string()).unwrap_or_default(),
    );
    for r in results {
        let total: u64 = r.picks.iter().sum::<u64>().max(1);
        let shares: Vec<String> = r.picks.iter().map(|&n| format!("{:.1}%", 100.0 * n as f64 / total as f64)).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}% | {} |",
            r.kind.name(),
            r.fairness.jain.map_or("–".into(), |j| format!("{j:.3}")),
            r.fairness.max_over_mean.map_or("–".into(), |m| format!("{m:.2}")),
            r.mean_us / 1e3,
            r.p99_us as f64 / 1e3,
            r.p999_us as f64 / 1e3,
            r.keys_moved * 100.0,
            shares.join(" / ")
        );
    }
    let _ = writeln!(
        md,
        "\nRaw: `replay.csv` (shares in the order {}).\n",
        t.backends.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
    );
    for (p, name) in plots.iter().zip(["shares.svg", "latency.svg"]) {
        match p {
            Ok(()) => {
                let _ = writeln!(md, "![{name}]({name})\n");
            }
            Err(e) => {
                let _ = writeln!(md, "({name} not drawn: {e})\n");
            }
        }
    }
    md
}
