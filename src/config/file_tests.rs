//! Unit tests of the config file: defaults, values, and every error naming
//! file, line and key.

use super::*;
use crate::config::DEFAULT_NAME;

const POOL: &str = "[[pool]]\nname = \"app\"\nservers = [\"127.0.0.1:8001\"]\n";

fn load(text: &str) -> Result<ServerConfig, ConfigError> {
    ServerConfig::from_toml(text, Path::new("lb.toml"))
}

/// A frontend "web" on 127.0.0.1:8080 using pool "app" (lines 4-7), then `extra` from line 8.
fn with_frontend(extra: &str) -> String {
    format!("{POOL}[[frontend]]\nname = \"web\"\nbind = \"127.0.0.1:8080\"\npool = \"app\"\n{extra}")
}

/// The error for `text`, checked to name the file, `line` and `key`.
fn error(text: &str, line: usize, key: &str) -> ConfigError {
    let e = load(text).expect_err("an error");
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("lb.toml:{line}:")), "wrong line, want {line}: {shown}");
    assert_eq!(e.key.as_deref(), Some(key), "{shown}");
    assert!(shown.contains(&format!("key \"{key}\"")), "{shown}");
    e
}

#[test]
fn a_minimal_file_gets_the_flag_defaults() {
    let s = load(&with_frontend("")).unwrap();
    assert_eq!(s.global, GlobalConfig::default());
    let f = &s.frontends[0];
    let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    assert_eq!(*f, FrontendConfig { name: "web".into(), listen, ..FrontendConfig::default() });
    let servers = vec![BackendSpec { addr: "127.0.0.1:8001".parse().unwrap(), weight: 1 }];
    assert_eq!(s.pools[0], PoolConfig { name: "app".into(), servers, ..PoolConfig::default() });
    assert_ne!(f.name, DEFAULT_NAME);
}

/// examples/configs/every-key.toml documents the defaults: it must hold them.
#[test]
fn the_every_key_example_sets_exactly_the_defaults() {
    let s = load(include_str!("../../examples/configs/every-key.toml")).unwrap();
    assert_eq!(s.global, GlobalConfig::default());
    let listen = s.frontends[0].listen;
    assert_eq!(s.frontends[0], FrontendConfig { name: "app".into(), listen, ..FrontendConfig::default() });
    let servers = s.pools[0].servers.clone();
    assert_eq!(s.pools[0], PoolConfig { name: "app".into(), servers, ..PoolConfig::default() });
}

#[test]
fn values_take_the_flags_syntax() {
    let text = r#"
[global]
admin = "9100"
admin_token = "s3cret"
log_level = "debug"
log_format = "json"
log_sessions = true
max_connections = 500
buffer_size = "16KiB"
pipe_size = "1MiB"
backlog = 64
drain_timeout = "500ms"
stats_interval = "0"
seed = 42

[[frontend]]
name = "web"
bind = "127.0.0.1:8080"
pool = "app"
mode = "http"
policy = "leastconn"
vnodes = 160
ring_slots = 512
maglev_size = 7
sma_window = 5
ewma_alpha = 0.5
ewma_decay = "1m"
hash_key = "header:X-User"
probe_path = "/big"
probe_interval = "1h"
connect_timeout = "250ms"
idle_timeout = "0"
request_timeout = "5s"
backend_timeout = "7s"
keepalive_timeout = "0"
backend_conn = "per-request"
pool_size = 8
pool_idle_timeout = "9s"
max_header_size = "8K"
access_log = "/var/log/lb.csv"
access_log_format = "combined"
redirect_code = 307
splice = "off"

[[pool]]
name = "app"
servers = ["127.0.0.1:8001", "127.0.0.1:8002@2,127.0.0.1:8003", { address = "localhost:8004", weight = 3 }]
health_check = "http:/heartbeat"
health_interval = "3s"
health_timeout = "300ms"
rise = 1
fall = 4
max_fails = 0
fail_timeout = "20s"
"#;
    let s = load(text).unwrap();
    let g = &s.global;
    assert_eq!(g.admin, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(g.admin_token.as_deref(), Some("s3cret"));
    assert_eq!((g.log_level, g.max_connections, g.buffer_size, g.backlog), (LevelFilter::Debug, Some(500), 16384, 64));
    assert_eq!(g.pipe_size, 1 << 20);
    assert_eq!((g.log_format, g.log_sessions), (LogFormat::Json, true));
    assert_eq!((g.drain_timeout, g.stats_interval, g.seed), (Duration::from_millis(500), None, 42));
    let c = s.to_config(0);
    assert_eq!((c.mode, c.policy), (Mode::Http, PolicyKind::FewestConnections));
    let p = c.params;
    assert_eq!((p.seed, p.vnodes, p.ring_slots, p.maglev_size, p.sma_window), (42, 160, Some(512), 7, 5));
    assert_eq!((p.ewma_alpha, p.ewma_decay), (0.5, Duration::from_secs(60)));
    assert_eq!(c.hash_key, Some(HashKey::Header("X-User".into())));
    assert_eq!((c.probe_path.as_str(), c.probe_interval), ("/big", Duration::from_secs(3600)));
    assert_eq!((c.connect_timeout, c.idle_timeout, c.keepalive_timeout), (Duration::from_millis(250), None, None));
    assert_eq!((c.request_timeout, c.backend_timeout), (Duration::from_secs(5), Duration::from_secs(7)));
    assert_eq!((c.backend_conn, c.pool_size, c.max_header_size), (BackendConnMode::PerRequest, 8, 8192));
    assert_eq!((c.access_log, c.redirect_code), (Some(PathBuf::from("/var/log/lb.csv")), 307));
    assert_eq!(c.splice, crate::splice::SpliceMode::Off);
    assert_eq!((c.access_log_format, c.log_sessions, c.max_connections), (AccessLogFormat::Combined, true, 500));
    let weights: Vec<(u16, u32)> = c.backends.iter().map(|b| (b.addr.port(), b.weight)).collect();
    assert_eq!(weights, [(8001, 1), (8002, 2), (8003, 1), (8004, 3)]);
    let h = c.health.expect("health checks");
    assert_eq!(h.kind, CheckKind::Http { path: "/heartbeat".into() });
    assert_eq!((h.interval, h.timeout, h.rise, h.fall), (Duration::from_secs(3), Duration::from_millis(300), 1, 4));
    assert_eq!(c.fail_policy, FailPolicy { max_fails: 0, fail_timeout: Duration::from_secs(20) });
}

#[test]
fn each_frontend_converts_with_its_own_pool() {
    let text = r#"
[[frontend]]
name = "web"
bind = "127.0.0.1:0"
pool = "b"
[[frontend]]
name = "redis"
bind = "127.0.0.1:0"
pool = "a"
mode = "tcp"
[[pool]]
name = "a"
servers = ["127.0.0.1:6379"]
[[pool]]
name = "b"
servers = ["127.0.0.1:8001", "127.0.0.1:8002"]
"#;
    let s = load(text).unwrap();
    assert_eq!(s.to_config(0).backends.len(), 2);
    assert_eq!(s.to_config(1).backends[0].addr.port(), 6379);
    assert_eq!(s.pool_of(1).name, "a");
}

#[test]
fn check_output_reads_back_as_the_same_configuration() {
    let text = with_frontend(
        "mode = \"redirect\"\nhash_key = \"path\"\naccess_log = \"a \\\"b\\\".csv\"\n[global]\nseed = 18446744073709551615\n",
    )
    .replace("8001\"]", "8001\", \"127.0.0.1:8002@5\"]\nspawn_cmd = \"x --port {port}\"\nreplicas = 2");
    let s = load(&text.replace("18446744073709551615", "\"18446744073709551615\"")).unwrap();
    let printed = s.to_toml();
    assert_eq!(load(&printed).unwrap(), s, "{printed}");
    assert!(printed.contains("# health_check: tcp (implied by spawn_cmd)"), "{printed}");
    let flags = ServerConfig::from_args(
        <crate::config::Args as clap::Parser>::try_parse_from(["lbproxy", "--backend", "127.0.0.1:1"]).unwrap(),
    )
    .unwrap();
    assert_eq!(load(&flags.to_toml()).unwrap(), flags);
}

#[test]
fn relative_paths_start_from_the_files_folder() {
    let dir = std::env::temp_dir().join(format!("lbproxy-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "tok123\n").unwrap();
    let text = with_frontend("access_log = \"access.csv\"\n[global]\nadmin_token_file = \"token\"\n");
    let s = ServerConfig::from_toml(&text, &dir.join("lb.toml")).unwrap();
    assert_eq!(s.global.admin_token.as_deref(), Some("tok123"));
    assert_eq!(s.frontends[0].access_log.as_deref(), Some(dir.join("access.csv").as_path()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slow_start_ejection_and_retry_budget_keys() {
    let pool = "slow_start = \"45s\"\neject_after = 5\neject_base = \"10s\"\neject_max_percent = \"30%\"\n";
    let text = with_frontend("retry_budget = \"25%\"\nretry_min_per_sec = 3\n").replace(POOL, &format!("{POOL}{pool}"));
    let c = load(&text).unwrap().to_config(0);
    assert_eq!(c.slow_start, Some(Duration::from_secs(45)));
    assert_eq!(c.eject, EjectPolicy { after: 5, base: Duration::from_secs(10), max_percent: 30 });
    assert_eq!(c.retry_budget, RetryBudgetConfig { percent: 25, min_per_sec: 3 });
    let e = error(&with_frontend("retry_budget = \"150%\"\n"), 8, "retry_budget");
    assert!(e.message.contains("\"150%\""), "{e}");
}

#[test]
fn the_message_has_file_line_column_section_key_and_reason() {
    let e = load(&with_frontend("policy = \"fastets\"\n")).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "lb.toml:8:10: frontend \"web\": key \"policy\": unknown policy \"fastets\" (expected one of:"
        ),
        "{shown}"
    );
}

#[test]
fn shadow_policies_are_policy_names() {
    let s = load(&with_frontend("shadow_policies = [\"maglev\", \"p2c\"]\naccess_log_explain = true\n")).unwrap();
    assert_eq!(s.frontends[0].shadow_policies, [PolicyKind::Maglev, PolicyKind::P2cPeakEwma]);
    assert!(s.frontends[0].access_log_explain);
    let e = error(&with_frontend("shadow_policies = [\"maglev\", \"fastets\"]\n"), 8, "shadow_policies");
    assert!(e.to_string().contains("unknown policy \"fastets\""), "{e}");
}

#[test]
fn unknown_keys() {
    let e = error(&with_frontend("polcy = \"rr\"\n"), 8, "polcy");
    assert!(e.message.contains("unknown key (expected one of: name, bind, pool"), "{e}");
    error(&format!("verbose = true\n{}", with_frontend("")), 1, "verbose");
    let e = error(&with_frontend("seed = 1\n"), 8, "seed");
    assert!(e.message.contains("belongs in [global]"), "{e}");
    let e = error(&with_frontend("[global]\nbind = \"x\"\n"), 9, "bind");
    assert_eq!(e.section.as_deref(), Some("global"));
    assert!(e.message.contains("belongs in [[frontend]]"), "{e}");
    let e = error(
        &with_frontend("").replace("servers = [\"127.0.0.1:8001\"]", "servers = [{ adress = \"x\" }]"),
        3,
        "servers[0].adress",
    );
    assert!(e.message.contains("address, weight"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    for (extra, key, reason) in [
        ("connect_timeout = \"2\"", "connect_timeout", "missing unit"),
        ("idle_timeout = 5", "idle_timeout", "missing unit"),
        ("max_header_size = \"1G\"", "max_header_size", "invalid size \"1G\""),
        ("mode = \"udp\"", "mode", "unknown mode \"udp\""),
        ("vnodes = 0", "vnodes", "invalid number \"0\""),
        ("maglev_size = 100", "maglev_size", "a prime"),
        ("ewma_alpha = 2.5", "ewma_alpha", "invalid alpha \"2.5\""),
        ("hash_key = \"cookie\"", "hash_key", "invalid hash key"),
        ("redirect_code = 200", "redirect_code", "invalid redirect code"),
        ("splice = \"always\"", "splice", "invalid splice mode \"always\""),
        ("pool_size = -1", "pool_size", "invalid number \"-1\""),
        ("probe_path = 1", "probe_path", "expected a string"),
    ] {
        let e = error(&with_frontend(&format!("{extra}\n")), 8, key);
        assert!(e.message.contains(reason), "{extra}: {e}");
        assert_eq!(e.section.as_deref(), Some("frontend \"web\""), "{e}");
    }
    let e = error(&with_frontend("").replace("127.0.0.1:8080", "localhost:8080"), 6, "bind");
    assert!(e.message.contains("invalid bind address \"localhost:8080\""), "{e}");
    let e = error(&with_frontend("[global]\nbuffer_size = \"12\"\n"), 9, "buffer_size");
    assert!(e.message.contains("between 1KiB and 64MiB"), "{e}");
    let e = error(&with_frontend("[global]\nmax_connections = 0\n"), 9, "max_connections");
    assert!(e.message.contains("\"0\""), "{e}");
    let e = error(&with_frontend("[global]\nlog_level = \"loud\"\n"), 9, "log_level");
    assert!(e.message.contains("invalid log level"), "{e}");
    let e = error(&with_frontend("[global]\nlog_format = \"xml\"\n"), 9, "log_format");
    assert!(e.message.contains("unknown log format \"xml\""), "{e}");
    let e = error(&with_frontend("access_log_format = \"clf\"\n"), 8, "access_log_format");
    assert!(e.message.contains("unknown access log format \"clf\""), "{e}");
    let e = error(&with_frontend("").replace("127.0.0.1:8001", "127.0.0.1:http"), 3, "servers[0]");
    assert!(e.message.contains("invalid backend address \"127.0.0.1:http\""), "{e}");
    let e = error(&with_frontend("").replace("servers", "health_check = \"icmp\"\nservers"), 3, "health_check");
    assert!(e.message.contains("invalid health check"), "{e}");
}

#[test]
fn weight_zero_is_refused_in_both_spellings() {
    let inline = with_frontend("")
        .replace("\"127.0.0.1:8001\"]", "\"127.0.0.1:8001\", { address = \"127.0.0.1:2\", weight = 0 }]");
    let e = error(&inline, 3, "servers[1].weight");
    assert!(e.message.contains("invalid weight \"0\""), "{e}");
    let e = error(&with_frontend("").replace("8001\"", "8001@0\""), 3, "servers[0]");
    assert!(e.message.contains("invalid weight \"0\""), "{e}");
    let e = error(&with_frontend("").replace("\"127.0.0.1:8001\"", "{ weight = 2 }"), 3, "servers[0]");
    assert!(e.message.contains("missing key \"address\""), "{e}");
}

#[test]
fn duplicate_binds_and_names() {
    let second =
        |name: &str, bind: &str| format!("[[frontend]]\nname = \"{name}\"\nbind = \"{bind}\"\npool = \"app\"\n");
    let e = error(&with_frontend(&second("api", "127.0.0.1:8080")), 10, "bind");
    assert!(e.message.contains("already taken by frontend \"web\" (127.0.0.1:8080, line 6)"), "{e}");
    assert_eq!(e.section.as_deref(), Some("frontend \"api\""));
    error(&with_frontend(&second("api", "0.0.0.0:8080")), 10, "bind");
    error(&with_frontend(&second("api", "[::]:8080")), 10, "bind");
    assert!(load(&with_frontend(&second("api", "127.0.0.2:8080"))).is_ok());
    let zero = with_frontend(&second("api", "127.0.0.1:0")).replace("8080", "0");
    assert!(load(&zero).is_ok(), "port 0 picks a free port for each");
    let e = error(&with_frontend(&second("web", "127.0.0.1:8081")), 9, "name");
    assert!(e.message.contains("duplicate frontend name \"web\" (first at line 5)"), "{e}");
    let e = error(&format!("{}{POOL}", with_frontend("")), 9, "name");
    assert!(e.message.contains("duplicate pool name \"app\" (first at line 2)"), "{e}");
    let e = error(&with_frontend("").replace("name = \"web\"", "name = \"my web\""), 5, "name");
    assert!(e.message.contains("invalid name \"my web\""), "{e}");
}

#[test]
fn pools_must_exist_and_have_servers() {
    let e = error(&with_frontend("").replace("pool = \"app\"", "pool = \"ap\""), 7, "pool");
    assert!(e.message.contains("no pool named \"ap\" (pools: app)"), "{e}");
    let e = error(&with_frontend("").replace("[\"127.0.0.1:8001\"]", "[]"), 3, "servers");
    assert!(e.message.contains("no servers"), "{e}");
    let e = error(&with_frontend("").replace("servers = [\"127.0.0.1:8001\"]\n", ""), 1, "servers");
    assert!(e.message.contains("no servers"), "{e}");
    let spawned =
        with_frontend("").replace("servers = [\"127.0.0.1:8001\"]", "spawn_cmd = \"b --port {port}\"\nreplicas = 2");
    assert_eq!(load(&spawned).unwrap().pools[0].replicas, Some(2));
    let e = error(&with_frontend("").replace("servers", "replicas = 2\nservers"), 3, "replicas");
    assert!(e.message.contains("needs spawn_cmd"), "{e}");
}

#[test]
fn required_keys_and_sections() {
    let e = error(&with_frontend("").replace("bind = \"127.0.0.1:8080\"\n", ""), 4, "bind");
    assert!(e.message.contains("missing"), "{e}");
    let e = error(&with_frontend("").replace("pool = \"app\"\n", ""), 4, "pool");
    assert!(e.message.contains("missing"), "{e}");
    let e = error(&with_frontend("").replace("name = \"web\"\n", ""), 4, "name");
    assert_eq!(e.section.as_deref(), Some("frontend #1"));
    assert!(load(POOL).unwrap_err().to_string().starts_with("lb.toml: no [[frontend]]"));
    let no_pool = with_frontend("").replace(POOL, "");
    assert!(load(&no_pool).unwrap_err().to_string().starts_with("lb.toml: no [[pool]]"));
    let e = error(&with_frontend("").replace("[[pool]]\nname = \"app\"", "[pool.app]"), 1, "pool");
    assert!(e.message.contains("[[pool]]"), "{e}");
}

#[test]
fn syntax_and_type_errors_are_placed() {
    let e = load(&with_frontend("mode = \"http\n")).unwrap_err();
    assert!(e.to_string().starts_with("lb.toml:8:"), "{e}");
    let e = error(&with_frontend("").replace("name = \"web\"", "name = 3"), 5, "name");
    assert!(e.message.contains("expected a string"), "{e}");
}

#[test]
fn the_admin_token_comes_from_one_place() {
    let both = with_frontend("[global]\nadmin_token = \"a\"\nadmin_token_file = \"t\"\n");
    let e = error(&both, 10, "admin_token_file");
    assert!(e.message.contains("not both"), "{e}");
    let e = error(&with_frontend("[global]\nadmin_token_file = \"/nonexistent/token\"\n"), 9, "admin_token_file");
    assert!(e.message.contains("cannot read /nonexistent/token"), "{e}");
}

/// SECTION_KEYS (for the misplaced-key hint) lists exactly what each section accepts.
#[test]
fn section_key_lists_match_the_raw_structs() {
    for ((section, keys), text) in SECTION_KEYS.iter().zip([
        format!("{}[global]\nzzz = 1\n", with_frontend("")),
        with_frontend("zzz = 1\n"),
        with_frontend("").replace("name = \"app\"", "name = \"app\"\nzzz = 1"),
    ]) {
        let e = load(&text).unwrap_err();
        let listed = e.message.split("expected one of: ").nth(1).expect("a key list").trim_end_matches(')');
        assert_eq!(listed.split(", ").collect::<Vec<_>>(), *keys, "{section}");
    }
}

/// `admin_read_only_open` is the file's spelling of --admin-read-only-open.
#[test]
fn admin_read_only_open_is_a_global_key() {
    assert!(!load(&with_frontend("[global]\nadmin = \"9100\"\n")).unwrap().global.admin_read_only_open);
    let s = load(&with_frontend("[global]\nadmin = \"9100\"\nadmin_read_only_open = true\n")).unwrap();
    assert!(s.global.admin_read_only_open);
    let e = error(&with_frontend("[global]\nadmin_read_only_open = \"yes\"\n"), 9, "admin_read_only_open");
    assert!(e.message.contains("bool"), "{e}");
}

/// An admin API beyond loopback needs a token or `admin_insecure = true`.
#[test]
fn an_exposed_admin_needs_a_token_or_admin_insecure() {
    let e = error(&with_frontend("[global]\nadmin = \"0.0.0.0:9100\"\n"), 9, "admin");
    assert!(e.message.contains("beyond this host without a token") && e.message.contains("admin_insecure"), "{e}");
    let s = load(&with_frontend("[global]\nadmin = \"0.0.0.0:9100\"\nadmin_insecure = true\n")).unwrap();
    assert_eq!(s.global.admin_exposed(), Some("0.0.0.0:9100".parse().unwrap()));
    for fine in ["admin = \"9100\"", "admin = \"[::1]:9100\"", "admin = \"0.0.0.0:9100\"\nadmin_token = \"t\""] {
        let s = load(&with_frontend(&format!("[global]\n{fine}\n"))).unwrap();
        assert_eq!(s.global.admin_exposed(), None, "{fine}");
    }
}
