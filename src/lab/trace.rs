//! A recorded access log (`--access-log`, CSV format) read back as a trace:
//! when each request came, from which client, for which path, which backend
//! answered and how long it took. Columns are found by name in the header,
//! so logs with shadow or explain columns read the same.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One request of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Since the first request of the trace.
    pub at: Duration,
    pub client: IpAddr,
    pub path: String,
    /// The backend that answered (`None`: the proxy answered itself, e.g. 503).
    pub backend: Option<SocketAddr>,
    pub status: u16,
    /// The backend's response time, when the log has one.
    pub latency: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub requests: Vec<Request>,
    /// Every backend the trace names, in address order.
    pub backends: Vec<SocketAddr>,
}

/// The fields of one CSV line (quotes as `csv_field` in the access log writes them).
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().expect("one field").push(c),
        }
    }
    out
}

/// Read a CSV access log; `source` names it in errors.
pub fn parse(text: &str, source: &str) -> Result<Trace, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| format!("{source}: empty, no CSV header"))?;
    let names = fields(header);
    let col = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            format!("{source}: no column \"{name}\" in the header (a CSV access log, --access-log-format csv?)")
        })
    };
    let (ts, client, path, backend, status, latency) =
        (col("timestamp")?, col("client")?, col("path")?, col("backend")?, col("status")?, col("latency_us")?);
    let mut requests = Vec::new();
    let mut stamps: Vec<f64> = Vec::new();
    for (n, line) in lines {
        let f = fields(line);
        let at = |k: usize, what: &str| {
            f.get(k).ok_or_else(|| format!("{source}:{}: no {what} field (only {} fields)", n + 1, f.len()))
        };
        let bad = |what: &str, v: &str| format!("{source}:{}: {what} \"{v}\" is not valid", n + 1);
        stamps.push(at(ts, "timestamp")?.parse().map_err(|_| bad("timestamp", &f[ts]))?);
        let b = at(backend, "backend")?;
        let l = at(latency, "latency_us")?;
        requests.push(Request {
            at: Duration::ZERO,
            client: at(client, "client")?.parse().map_err(|_| bad("client", &f[client]))?,
            path: at(path, "path")?.clone(),
            backend: if b.is_empty() { None } else { Some(b.parse().map_err(|_| bad("backend", b))?) },
            status: at(status, "status")?.parse().map_err(|_| bad("status", &f[status]))?,
            latency: if l.is_empty() {
                None
            } else {
                Some(Duration::from_micros(l.parse().map_err(|_| bad("latency_us", l))?))
            },
        });
    }
    if requests.is_empty() {
        return Err(format!("{source}: a header and no requests"));
    }
    // A line is written when its request ends: it began its response time
    // earlier (as far as the log knows). Times count from the first start.
    let starts: Vec<f64> =
        requests.iter().zip(&stamps).map(|(r, t)| t - r.latency.map_or(0.0, |l| l.as_secs_f64())).collect();
    let t0 = starts.iter().copied().fold(f64::INFINITY, f64::min);
    for (r, t) in requests.iter_mut().zip(&starts) {
        r.at = Duration::from_secs_f64((t - t0).max(0.0));
    }
    // Replayed in the order they came.
    requests.sort_by_key(|r| r.at);
    let mut backends: Vec<SocketAddr> = requests.iter().filter_map(|r| r.backend).collect();
    backends.sort();
    backends.dedup();
    if backends.is_empty() {
        return Err(format!("{source}: no request names a backend: nothing to model"));
    }
    Ok(Trace { requests, backends })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "timestamp,client,method,path,backend,status,bytes,latency_us,reused,time,shadow_maglev\n\
        100.500000,127.0.0.1,GET,/a,127.0.0.1:8002,200,5,1500,false,x,127.0.0.1:8001\n\
        100.000000,127.0.0.2,GET,\"/b,\"\"c\"\"\",127.0.0.1:8001,200,5,700,true,x,\n\
        101.000000,127.0.0.3,GET,/,,503,0,,false,x,\n";

    #[test]
    fn columns_by_name_quotes_and_order_of_arrival() {
        let t = parse(LOG, "access.csv").unwrap();
        assert_eq!(t.backends, ["127.0.0.1:8001".parse().unwrap(), "127.0.0.1:8002".parse::<SocketAddr>().unwrap()]);
        assert_eq!(t.requests.len(), 3);
        assert_eq!(t.requests[0].path, "/b,\"c\"");
        // Started at its line's time less its response time: 100.0 - 0.0007 and 100.5 - 0.0015.
        assert_eq!(t.requests[0].at, Duration::ZERO);
        assert_eq!(t.requests[1].at.as_micros(), 499_200);
        assert_eq!(t.requests[1].latency, Some(Duration::from_micros(1500)));
        assert_eq!((t.requests[2].backend, t.requests[2].status, t.requests[2].latency), (None, 503, None));
    }

    #[test]
    fn errors_name_the_file_line_and_value() {
        assert!(parse("", "a.csv").unwrap_err().contains("a.csv: empty"));
        let e = parse("timestamp,client\n", "a.csv").unwrap_err();
        assert!(e.contains("no column \"path\""), "{e}");
        let bad = LOG.replace("127.0.0.3", "nobody");
        let e = parse(&bad, "a.csv").unwrap_err();
        assert!(e.starts_with("a.csv:4: client \"nobody\""), "{e}");
        let e = parse(&LOG.replace("1500", "soon"), "a.csv").unwrap_err();
        assert!(e.contains("latency_us \"soon\""), "{e}");
        let header = LOG.lines().next().unwrap();
        assert!(parse(&format!("{header}\n"), "a.csv").unwrap_err().contains("no requests"));
    }
}
