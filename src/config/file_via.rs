//! Deserializers that hand a value's text to the flag's parser, so a file
//! accepts exactly what the command line does and the `toml` crate places
//! the parser's error on the value.

use super::*;

/// A string, or a number as written (`10000`, `0.3`).
struct Text;

impl Visitor<'_> for Text {
    type Value = String;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        Ok(s.to_string())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<String, E> {
        Ok(n.to_string())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<String, E> {
        Ok(n.to_string())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<String, E> {
        Ok(n.to_string())
    }
}

macro_rules! via {
    ($($name:ident: $ty:ty = $parse:expr;)*) => {$(
        pub fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
            let text = d.deserialize_any(Text)?;
            $parse(&text).map(Some).map_err(de::Error::custom)
        }
    )*};
}

via! {
    admin: SocketAddr = parse_admin_addr;
    listen: SocketAddr = parse_listen_addr;
    weight: u32 = parse_weight;
    log_level: LevelFilter = parse_log_level;
    log_format: LogFormat = parse_log_format;
    access_log_format: AccessLogFormat = parse_access_log_format;
    max_connections: usize = parse_max_connections;
    workers: Workers = parse_workers;
    accept: Accept = parse_accept;
    size: usize = parse_size;
    backlog: i32 = parse_number::<i32>;
    seed: u64 = parse_number::<u64>;
    count: usize = parse_number::<usize>;
    max_fails: u32 = parse_number::<u32>;
    duration: Duration = parse_duration;
    mode: Mode = parse_mode;
    policy: PolicyKind = parse_policy;
    vnodes: u32 = parse_vnodes;
    ring_slots: u32 = parse_ring_slots;
    maglev_size: u32 = parse_prime;
    sma_window: usize = parse_sma_window;
    alpha: f64 = parse_alpha;
    hash_key: HashKey = parse_hash_key;
    backend_conn: BackendConnMode = parse_backend_conn;
    redirect_code: u16 = parse_redirect_code;
    splice: crate::splice::SpliceMode = parse_splice;
    balance_factor: f64 = parse_balance_factor;
    accept_proxy: Option<AcceptMode> = parse_accept_proxy;
    send_proxy: Option<ProxyVersion> = parse_send_proxy;
    backend_tls: Option<BackendTlsMode> = parse_backend_tls;
    health_check: CheckKind = parse_health_check;
    threshold: u32 = parse_threshold;
    percent: u32 = parse_percent;
}
