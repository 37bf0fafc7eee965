//! Value parsers shared by the command line and the config file, and the
//! formatters that print values back in the same syntax.
//!
//! Every parser takes the text a user wrote and returns an error naming that
//! text; the caller adds where it came from (clap: the flag; the config file:
//! file, line and key). `fmt_*(x)` parses back to `x`, so `--help` and
//! `--check` show values exactly as they may be written.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use super::{BackendList, BackendSpec, MAX_WEIGHT, Mode};
use crate::discovery::NameSpec;
use crate::health::CheckKind;
use crate::http::head::HashKey;
use crate::http::{AccessLogFormat, BackendConnMode};
use crate::logfmt::LogFormat;
use crate::policy::PolicyKind;
use crate::proxy_protocol::{AcceptMode, Version as ProxyVersion};

pub fn parse_mode(s: &str) -> Result<Mode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(Mode::Tcp),
        "http" => Ok(Mode::Http),
        "redirect" => Ok(Mode::Redirect),
        _ => Err(format!("unknown mode \"{s}\" (expected tcp, http or redirect)")),
    }
}

pub fn parse_backend_conn(s: &str) -> Result<BackendConnMode, String> {
    match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "persistent" | "keep-alive" | "keepalive" => Ok(BackendConnMode::Persistent),
        "per-request" | "perrequest" | "close" => Ok(BackendConnMode::PerRequest),
        _ => Err(format!("unknown backend connection mode \"{s}\" (expected persistent or per-request)")),
    }
}

pub fn fmt_backend_conn(m: BackendConnMode) -> &'static str {
    match m {
        BackendConnMode::Persistent => "persistent",
        BackendConnMode::PerRequest => "per-request",
    }
}

pub fn parse_redirect_code(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(c @ (301 | 302 | 307 | 308)) => Ok(c),
        _ => Err(format!("invalid redirect code \"{s}\" (expected 301, 302, 307 or 308)")),
    }
}

/// `--splice`: `auto` or `off`.
pub fn parse_splice(s: &str) -> Result<crate::splice::SpliceMode, String> {
    use crate::splice::SpliceMode;
    match s.trim() {
        "auto" | "on" => Ok(SpliceMode::Auto),
        "off" => Ok(SpliceMode::Off),
        _ => Err(format!("invalid splice mode \"{s}\" (expected auto or off)")),
    }
}

/// `off`, `v1` or `v2`.
pub fn parse_send_proxy(s: &str) -> Result<Option<ProxyVersion>, String> {
    match s.trim() {
        "off" | "" => Ok(None),
        v => v.parse().map(Some),
    }
}

/// `off`, `verify` or `insecure`.
pub fn parse_backend_tls(s: &str) -> Result<Option<crate::tls::BackendTlsMode>, String> {
    match s.trim() {
        "off" | "" => Ok(None),
        v => v.parse().map(Some),
    }
}

/// `off`, `required` or `optional`.
pub fn parse_accept_proxy(s: &str) -> Result<Option<AcceptMode>, String> {
    match s.trim() {
        "off" | "" => Ok(None),
        v => v.parse().map(Some),
    }
}

pub fn fmt_send_proxy(v: Option<ProxyVersion>) -> String {
    v.map_or("off".into(), |v| v.to_string())
}

/// consistent_hash and maglev bounded loads: `0` (off) or 1.0 to 100.
pub fn parse_balance_factor(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f == 0.0 || (1.0..=100.0).contains(&f) => Ok(f),
        _ => Err(format!("invalid balance factor \"{s}\" (expected 0 for off, or 1.0 to 100, e.g. 1.25)")),
    }
}

pub fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    PolicyKind::from_str(s)
}

pub fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    HashKey::parse(s)
}

pub fn fmt_hash_key(k: &HashKey) -> String {
    match k {
        HashKey::Header(name) => format!("header:{name}"),
        HashKey::Query(name) => format!("query:{name}"),
        HashKey::Path => "path".into(),
    }
}

pub fn parse_health_check(s: &str) -> Result<CheckKind, String> {
    CheckKind::parse(s)
}

pub fn fmt_health_check(k: &CheckKind) -> String {
    match k {
        CheckKind::Tcp => "tcp".into(),
        CheckKind::Http { path } => format!("http:{path}"),
    }
}

/// `off`, `error`, `warn`, `info`, `debug` or `trace`.
pub fn parse_log_level(s: &str) -> Result<LevelFilter, String> {
    LevelFilter::from_str(s.trim())
        .map_err(|_| format!("invalid log level \"{s}\" (expected off, error, warn, info, debug or trace)"))
}

/// The level as `parse_log_level` takes it (lower case).
pub fn fmt_log_level(l: LevelFilter) -> &'static str {
    match l {
        LevelFilter::Off => "off",
        LevelFilter::Error => "error",
        LevelFilter::Warn => "warn",
        LevelFilter::Info => "info",
        LevelFilter::Debug => "debug",
        LevelFilter::Trace => "trace",
    }
}

/// A whole number in `range`, in Rust's usual syntax.
fn parse_int<T: FromStr + PartialOrd + Display>(s: &str, range: RangeInclusive<T>) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("invalid number \"{s}\" (expected {} to {})", range.start(), range.end())),
    }
}

/// A percentage 0 to 100, with or without its `%` (`20%`, `20`).
pub fn parse_percent(s: &str) -> Result<u32, String> {
    let n = s.trim().strip_suffix('%').unwrap_or(s.trim());
    parse_int(n, 0..=100).map_err(|_| format!("invalid percentage \"{s}\" (expected 0% to 100%)"))
}

/// Any number of type `T` (what clap accepts for a plain integer flag).
pub fn parse_number<T: FromStr>(s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("invalid number \"{s}\""))
}

/// `--log-format`: `text` or `json`.
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format \"{s}\" (expected text or json)")),
    }
}

/// `--access-log-format`: `csv`, `combined` or `json`.
pub fn parse_access_log_format(s: &str) -> Result<AccessLogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "csv" => Ok(AccessLogFormat::Csv),
        "combined" => Ok(AccessLogFormat::Combined),
        "json" => Ok(AccessLogFormat::Json),
        _ => Err(format!("unknown access log format \"{s}\" (expected csv, combined or json)")),
    }
}

/// `--max-connections`: at least one.
pub fn parse_max_connections(s: &str) -> Result<usize, String> {
    parse_int(s, 1..=u32::MAX as usize)
}

/// `--rise` / `--fall`: at least one result in a row.
pub fn parse_threshold(s: &str) -> Result<u32, String> {
    parse_int(s, 1..=u32::MAX)
}

pub fn parse_vnodes(s: &str) -> Result<u32, String> {
    parse_int(s, 1..=10_000)
}

pub fn parse_ring_slots(s: &str) -> Result<u32, String> {
    parse_int(s, 1..=10_000_000)
}

pub fn parse_sma_window(s: &str) -> Result<usize, String> {
    parse_int(s, 1..=100_000)
}

/// Maglev table size: a prime from 7 to 10000019.
pub fn parse_prime(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim().parse().map_err(|_| format!("invalid table size \"{s}\""))?;
    let prime = n >= 7 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
    if prime && n <= 10_000_019 {
        Ok(n)
    } else {
        Err(format!("invalid table size \"{s}\": use a prime from 7 to 10000019"))
    }
}

pub fn parse_alpha(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(a) if a > 0.0 && a <= 1.0 => Ok(a),
        _ => Err(format!("invalid alpha \"{s}\" (expected 0 < alpha <= 1)")),
    }
}

/// `HOST:PORT`, or a bare port on the loopback address.
pub fn parse_admin_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.trim().parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.trim().parse().map_err(|_| format!("invalid admin address \"{s}\" (expected IP:PORT or PORT)"))
}

/// A listen address: `IP:PORT` (`[::1]:80` for IPv6); port 0 picks a free one.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| match s.trim().rsplit_once(':') {
        Some((ip, _)) if ip.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() => {
            format!("invalid bind address \"{s}\": port is not a number 0-65535")
        }
        _ => format!("invalid bind address \"{s}\" (expected IP:PORT, e.g. 0.0.0.0:80 or [::]:80)"),
    })
}

/// `HOST:PORT[,HOST:PORT...]`, each resolved now (first address of each
/// name). A weight follows as `HOST:PORT@3` or as a `weight=3` item after
/// the address: `127.0.0.1:8001,weight=3,127.0.0.1:8002`.
pub fn parse_backend_list(s: &str) -> Result<BackendList, String> {
    let mut out: Vec<BackendSpec> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(w) = part.strip_prefix("weight=") {
            let last =
                out.last_mut().ok_or_else(|| format!("invalid backend list \"{s}\": weight before any address"))?;
            last.weight = parse_weight(w).map_err(|e| format!("{e} in \"{s}\""))?;
            continue;
        }
        let (addr, weight) = match part.rsplit_once('@') {
            Some((a, w)) => (a, parse_weight(w).map_err(|e| format!("{e} in \"{s}\""))?),
            None => (part, 1),
        };
        out.push(BackendSpec { addr: parse_backend(addr)?, weight });
    }
    if out.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty list"));
    }
    Ok(BackendList(out))
}

/// A backend's relative weight, 1 to [`MAX_WEIGHT`].
pub fn parse_weight(w: &str) -> Result<u32, String> {
    match w.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_WEIGHT).contains(&n) => Ok(n),
        _ => Err(format!("invalid weight \"{w}\" (expected 1-{MAX_WEIGHT})")),
    }
}

/// One `HOST:PORT`, resolved now (its first address).
pub fn parse_backend(s: &str) -> Result<SocketAddr, String> {
    match parse_target(s)? {
        Target::Addr(addr) => Ok(addr),
        Target::Name { host, port } => resolve(s.trim(), &host, port),
    }
}

/// A backend address as written: a literal socket address, or a host name
/// still to be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

/// Check `HOST:PORT` without looking anything up, so a caller that must not
/// block (the reactor) can answer bad input at once and hand names elsewhere.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return check_port(s, addr).map(Target::Addr);
    }
    let (host, port) =
        s.rsplit_once(':').ok_or_else(|| format!("invalid backend address \"{s}\": expected HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid backend address \"{s}\": port \"{port}\" is not a number 1-65535"))?;
    if port == 0 {
        return Err(format!("invalid backend address \"{s}\": port 0"));
    }
    Ok(Target::Name { host: host.to_string(), port })
}

/// Look `host` up (this blocks: the system resolver) and take its first address.
pub fn resolve(s: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("invalid backend address \"{s}\": cannot resolve \"{host}\": {e}"))?
        .next()
        .ok_or_else(|| format!("invalid backend address \"{s}\": \"{host}\" has no address"))?;
    check_port(s, addr)
}

/// One entry of a pool's `servers` in a config file, no name resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEntry {
    Addr(BackendSpec),
    Name(NameSpec),
}

/// What `parse_backend_list` accepts, plus SRV names (`_service._proto.name`),
/// with host names kept as names: the caller resolves them once, or hands
/// them to the discovery thread.
pub fn parse_server_entries(s: &str) -> Result<Vec<ServerEntry>, String> {
    let mut out: Vec<ServerEntry> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(w) = part.strip_prefix("weight=") {
            let weight = parse_weight(w).map_err(|e| format!("{e} in \"{s}\""))?;
            match out.last_mut() {
                Some(ServerEntry::Addr(b)) => b.weight = weight,
                Some(ServerEntry::Name(NameSpec::Host { weight: wt, .. })) => *wt = weight,
                _ => return Err(format!("invalid server list \"{s}\": weight before an address or host")),
            }
            continue;
        }
        let (addr, weight) = match part.rsplit_once('@') {
            Some((a, w)) => (a, parse_weight(w).map_err(|e| format!("{e} in \"{s}\""))?),
            None => (part, 1),
        };
        out.push(parse_server_entry(addr, weight)?);
    }
    if out.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty list"));
    }
    Ok(out)
}

/// `IP:PORT`, `HOST:PORT` or an SRV name, with its weight.
pub fn parse_server_entry(s: &str, weight: u32) -> Result<ServerEntry, String> {
    let s = s.trim();
    if NameSpec::is_srv(s) {
        if weight != 1 {
            return Err(format!("SRV name \"{s}\" takes its weights from DNS: remove the weight"));
        }
        return Ok(ServerEntry::Name(NameSpec::Srv { name: s.to_string() }));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(ServerEntry::Addr(BackendSpec { addr: check_port(s, addr)?, weight }));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid backend address \"{s}\": expected HOST:PORT or _service._proto.name"))?;
    if host.is_empty() {
        return Err(format!("invalid backend address \"{s}\": empty host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("invalid backend address \"{s}\": port \"{port}\" is not a number 1-65535"))?;
    Ok(ServerEntry::Name(NameSpec::Host { host: host.to_string(), port, weight }))
}

/// A DNS server for `resolvers`: `IP` (port 53) or `IP:PORT`.
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("invalid resolver \"{s}\": expected IP or IP:PORT"))
}

fn check_port(s: &str, addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err(format!("invalid backend address \"{s}\": port 0"));
    }
    Ok(addr)
}

/// `500ms`, `2s`, `5m`, `1h`, or `0`. A unit is required for non-zero values
/// so that `--connect-timeout 2` is not silently two milliseconds or hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("invalid duration \"{s}\": missing unit (ms, s, m, h)"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration \"{s}\": \"{num}\" is not a number"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!("invalid duration \"{s}\": unknown unit \"{other}\" (use ms, s, m, h)"));
        }
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("invalid duration \"{s}\": out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The largest unit that shows `d` as a whole number: `2s`, `5m`, `1h`, `500ms`, `0`.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0".into();
    }
    for (unit, per) in [("h", 3_600_000_000u128), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000)] {
        if us.is_multiple_of(per) {
            return format!("{}{unit}", us / per);
        }
    }
    format!("{us}us")
}

/// A duration where zero means off.
pub fn fmt_optional_duration(d: Option<Duration>) -> String {
    d.map_or_else(|| "0".into(), fmt_duration)
}

/// Byte sizes: `16384`, `16K`, `16KiB`, `1M`, `1MiB`. Between 1 KiB and 64 MiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size \"{s}\": \"{num}\" is not a whole number"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        other => return Err(format!("invalid size \"{s}\": unknown unit \"{other}\" (use K or M)")),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("invalid size \"{s}\": too large"))?;
    if !(1024..=64 * 1024 * 1024).contains(&bytes) {
        return Err(format!("invalid size \"{s}\": must be between 1KiB and 64MiB"));
    }
    Ok(bytes)
}

/// `64KiB`, `1MiB`, or plain bytes when not a whole number of KiB.
pub fn fmt_size(bytes: usize) -> String {
    match bytes {
        b if b > 0 && b.is_multiple_of(1 << 20) => format!("{}MiB", b >> 20),
        b if b > 0 && b.is_multiple_of(1 << 10) => format!("{}KiB", b >> 10),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_without_a_lookup() {
        let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(parse_target(" 127.0.0.1:80 "), Ok(Target::Addr(a)));
        assert_eq!(parse_target("web.example:8080"), Ok(Target::Name { host: "web.example".into(), port: 8080 }));
        assert!(parse_target("web.example").unwrap_err().contains("expected HOST:PORT"));
        assert!(parse_target(":80").unwrap_err().contains("empty host"));
        assert!(parse_target("web.example:x").unwrap_err().contains("port \"x\""));
        assert!(parse_target("web.example:0").unwrap_err().contains("port 0"));
        assert!(parse_target("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("2").unwrap_err().contains("missing unit"));
        assert!(parse_duration("2x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("ms").unwrap_err().contains("not a number"));
    }

    #[test]
    fn durations_print_back_in_the_syntax_they_parse_from() {
        for (d, text) in [
            (Duration::ZERO, "0"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_secs(75), "75s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_micros(1), "1us"),
        ] {
            assert_eq!(fmt_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d, "{text}");
        }
        assert_eq!(fmt_optional_duration(None), "0");
    }

    #[test]
    fn percentages_with_or_without_the_sign() {
        assert_eq!(parse_percent("20%").unwrap(), 20);
        assert_eq!(parse_percent(" 50 ").unwrap(), 50);
        assert_eq!(parse_percent("0").unwrap(), 0);
        let e = parse_percent("150%").unwrap_err();
        assert!(e.contains("\"150%\"") && e.contains("0% to 100%"), "{e}");
        assert!(parse_percent("-1").is_err() && parse_percent("x%").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16KiB").unwrap(), 16384);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12").is_err());
        assert!(parse_size("1G").is_err());
        for b in [1024, 1500 * 1024, 64 << 20, 4097] {
            assert_eq!(parse_size(&fmt_size(b)).unwrap(), b, "{}", fmt_size(b));
        }
        assert_eq!(fmt_size(64 * 1024), "64KiB");
    }

    #[test]
    fn backends_lists_and_errors() {
        let l = parse_backend_list("127.0.0.1:8001, 127.0.0.1:8002").unwrap();
        assert_eq!(l.0.len(), 2);
        assert_eq!(parse_backend_list("localhost:80").unwrap().0[0].addr.port(), 80);
        let w = parse_backend_list("127.0.0.1:1,weight=3,127.0.0.1:2@2,127.0.0.1:3").unwrap().0;
        assert_eq!(w.iter().map(|b| b.weight).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(parse_backend_list("weight=3").unwrap_err().contains("weight before any address"));
        assert!(parse_backend_list("127.0.0.1:1@0").unwrap_err().contains("invalid weight \"0\""));
        let e = parse_backend_list("foo:bar").unwrap_err();
        assert!(e.starts_with("invalid backend address \"foo:bar\""), "{e}");
        assert!(parse_backend_list("127.0.0.1").unwrap_err().contains("HOST:PORT"));
        assert!(parse_backend_list("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[test]
    fn listen_addresses_are_ip_and_port() {
        assert_eq!(parse_listen_addr("127.0.0.1:0").unwrap(), SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(parse_listen_addr("[::]:80").unwrap().port(), 80);
        assert!(parse_listen_addr("127.0.0.1:http").unwrap_err().contains("port is not a number"));
        assert!(parse_listen_addr("localhost:80").unwrap_err().contains("expected IP:PORT"));
        assert!(parse_listen_addr("80").unwrap_err().contains("expected IP:PORT"));
    }

    #[test]
    fn ranges_and_names() {
        assert_eq!(parse_max_connections("10"), Ok(10));
        assert!(parse_max_connections("0").unwrap_err().contains("\"0\""));
        assert!(parse_vnodes("10001").is_err());
        assert!(parse_sma_window("0").is_err());
        assert!(parse_prime("65536").is_err());
        assert!(parse_alpha("0").is_err());
        assert_eq!(parse_log_level("DEBUG"), Ok(LevelFilter::Debug));
        assert_eq!(parse_log_format("JSON"), Ok(LogFormat::Json));
        assert!(parse_log_format("xml").unwrap_err().contains("\"xml\""));
        assert_eq!(parse_access_log_format("combined"), Ok(AccessLogFormat::Combined));
        assert!(parse_access_log_format("clf").unwrap_err().contains("\"clf\""));
        assert!(parse_log_level("loud").unwrap_err().contains("\"loud\""));
        for k in ["header:X-User", "query:id", "path"] {
            assert_eq!(fmt_hash_key(&parse_hash_key(k).unwrap()), k);
        }
        for k in ["tcp", "http:/heartbeat"] {
            assert_eq!(fmt_health_check(&parse_health_check(k).unwrap()), k);
        }
        for m in ["persistent", "per-request"] {
            assert_eq!(fmt_backend_conn(parse_backend_conn(m).unwrap()), m);
        }
        assert_eq!(parse_accept("REUSEPORT"), Ok(Accept::Reuseport));
        assert_eq!(parse_accept("exclusive").map(Accept::name), Ok("exclusive"));
        assert!(parse_accept("shared").unwrap_err().contains("\"shared\""));
    }
}

/// `--workers` / `workers`: how many reactor threads serve the frontends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Count(usize),
    /// As many as the cores this process may run on (affinity, cgroup quota).
    Auto,
}

impl Workers {
    /// Most threads a process takes: each has its own epoll and buffers.
    pub const MAX: usize = 64;

    /// The number of reactor threads to run.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()).min(Workers::MAX),
        }
    }
}

impl std::fmt::Display for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workers::Count(n) => write!(f, "{n}"),
            Workers::Auto => f.write_str("auto"),
        }
    }
}

pub fn parse_workers(s: &str) -> Result<Workers, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Workers::Auto);
    }
    parse_int(s, 1..=Workers::MAX).map(Workers::Count).map_err(|e| format!("{e} (or \"auto\")"))
}

/// `--accept` / `accept`: how several reactors take new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// One listening socket per frontend, polled by every reactor with
    /// `EPOLLEXCLUSIVE` (one wakes per new client), a few accepts a turn.
    Exclusive,
    /// One socket per frontend per reactor, bound with `SO_REUSEPORT`: the
    /// kernel picks the socket (a hash of the client's address and port).
    Reuseport,
}

impl Accept {
    pub fn name(self) -> &'static str {
        match self {
            Accept::Exclusive => "exclusive",
            Accept::Reuseport => "reuseport",
        }
    }
}

impl std::fmt::Display for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn parse_accept(s: &str) -> Result<Accept, String> {
    [Accept::Exclusive, Accept::Reuseport]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown accept mode \"{s}\" (expected exclusive or reuseport)"))
}
