//! `--check` output: the effective configuration as a config file, every
//! default filled in. Reading it back gives the same `ServerConfig` (a unit
//! test holds this), so it is also a starting point for a file of one's own.

use std::fmt::Write;

use super::values::*;
use super::{BackendSpec, FrontendConfig, GlobalConfig, PoolConfig, ServerConfig};
use crate::discovery::NameSpec;

/// A TOML string with its quotes and escapes.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `key = value`, or a comment saying the key is off.
fn opt(out: &mut String, key: &str, value: Option<String>, off: &str) {
    match value {
        Some(v) => writeln!(out, "{key} = {v}"),
        None => writeln!(out, "# {key}: {off}"),
    }
    .expect("writing to a String");
}

fn server(s: &BackendSpec) -> String {
    match s.weight {
        1 => q(&s.addr.to_string()),
        w => format!("{{ address = {}, weight = {w} }}", q(&s.addr.to_string())),
    }
}

impl ServerConfig {
    /// The configuration as TOML that `--config` accepts; the admin token is
    /// not shown.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# lbproxy configuration: every key with its value, defaults filled in.\n");
        global(&mut out, &self.global);
        for f in &self.frontends {
            frontend(&mut out, f, &self.pools[f.pool].name, &self.pools);
        }
        for p in &self.pools {
            pool(&mut out, p);
        }
        out
    }
}

fn global(out: &mut String, g: &GlobalConfig) {
    out.push_str("[global]\n");
    opt(out, "admin", g.admin.map(|a| q(&a.to_string())), "off");
    let token = if g.admin_token.is_some() { "set (not shown)" } else { "none" };
    writeln!(out, "# admin_token: {token}").expect("writing to a String");
    writeln!(out, "admin_insecure = {}", g.admin_insecure).expect("writing to a String");
    writeln!(out, "admin_read_only_open = {}", g.admin_read_only_open).expect("writing to a String");
    opt(out, "upgrade_socket", g.upgrade_socket.as_ref().map(|p| q(&p.display().to_string())), "off");
    // A seed above i64::MAX is no TOML integer; its text parses the same.
    let seed = if i64::try_from(g.seed).is_ok() { g.seed.to_string() } else { q(&g.seed.to_string()) };
    let _ = write!(
        out,
        "log_level = {}\nlog_format = {}\nlog_sessions = {}\n",
        q(&g.log_level.to_string().to_ascii_lowercase()),
        q(g.log_format.name()),
        g.log_sessions
    );
    opt(out, "max_connections", g.max_connections.map(|n| n.to_string()), "what the open-file limit allows");
    let _ = write!(
        out,
        "buffer_size = {}\npipe_size = {}\nbacklog = {}\ndrain_timeout = {}\nstats_interval = {}\nseed = {seed}\nworkers = {}\naccept = {}\n",
        q(&fmt_size(g.buffer_size)),
        q(&fmt_size(g.pipe_size)),
        g.backlog,
        q(&fmt_duration(g.drain_timeout)),
        q(&fmt_optional_duration(g.stats_interval)),
        q(&g.workers.to_string()),
        q(g.accept.name()),
    );
}

fn frontend(out: &mut String, f: &FrontendConfig, pool: &str, pools: &[PoolConfig]) {
    let p = &f.params;
    let _ = write!(
        out,
        "\n[[frontend]]\nname = {}\nbind = {}\npool = {}\nmode = {}\npolicy = {}\nvnodes = {}\n",
        q(&f.name),
        q(&f.listen.to_string()),
        q(pool),
        q(f.mode.name()),
        q(f.policy.name()),
        p.vnodes,
    );
    opt(out, "ring_slots", p.ring_slots.map(|n| n.to_string()), "off (64-bit ring positions)");
    let _ = write!(
        out,
        "maglev_size = {}\nsma_window = {}\newma_alpha = {}\newma_decay = {}\n",
        p.maglev_size,
        p.sma_window,
        p.ewma_alpha,
        q(&fmt_duration(p.ewma_decay)),
    );
    let _ = writeln!(out, "hash_balance_factor = {}", p.balance_factor.unwrap_or(0.0));
    let shadows: Vec<String> = f.shadow_policies.iter().map(|k| q(k.name())).collect();
    let _ = writeln!(out, "shadow_policies = [{}]", shadows.join(", "));
    opt(out, "hash_key", f.hash_key.as_ref().map(|k| q(&fmt_hash_key(k))), "off (the client address)");
    let _ = write!(
        out,
        "probe_path = {}\nprobe_interval = {}\nconnect_timeout = {}\nidle_timeout = {}\nrequest_timeout = {}\n\
         backend_timeout = {}\nkeepalive_timeout = {}\nbackend_conn = {}\npool_size = {}\npool_idle_timeout = {}\n\
         max_header_size = {}\n",
        q(&f.probe_path),
        q(&fmt_duration(f.probe_interval)),
        q(&fmt_duration(f.connect_timeout)),
        q(&fmt_optional_duration(f.idle_timeout)),
        q(&fmt_duration(f.request_timeout)),
        q(&fmt_duration(f.backend_timeout)),
        q(&fmt_optional_duration(f.keepalive_timeout)),
        q(fmt_backend_conn(f.backend_conn)),
        f.pool_size,
        q(&fmt_duration(f.pool_idle_timeout)),
        q(&fmt_size(f.max_header_size)),
    );
    let _ = write!(
        out,
        "max_conns_per_ip = {}\nrate_per_ip = {}\n",
        f.per_ip.max_conns.unwrap_or(0),
        f.per_ip.rate.unwrap_or(0)
    );
    let accept = f.accept_proxy.mode.map_or("off", |m| m.name());
    let trusted: Vec<String> = f.accept_proxy.trusted.iter().map(|c| q(&c.to_string())).collect();
    let _ = writeln!(out, "accept_proxy = {}\ntrusted_proxies = [{}]", q(accept), trusted.join(", "));
    if let Some(t) = &f.tls {
        let entries: Vec<String> = t
            .files
            .iter()
            .map(|x| {
                format!("{{ cert = {}, key = {} }}", q(&x.cert.display().to_string()), q(&x.key.display().to_string()))
            })
            .collect();
        let _ = writeln!(out, "tls = [{}]", entries.join(", "));
    }
    if !f.sni_routes.is_empty() {
        let routes: Vec<String> = f
            .sni_routes
            .iter()
            .map(|r| {
                let names: Vec<String> = r.names.iter().map(|n| q(n)).collect();
                let pool = pools.get(r.pool).map_or("?", |p| p.name.as_str());
                format!("{{ names = [{}], pool = {} }}", names.join(", "), q(pool))
            })
            .collect();
        let _ = writeln!(out, "sni_routes = [{}]", routes.join(", "));
    }
    opt(out, "access_log", f.access_log.as_ref().map(|p| q(&p.display().to_string())), "off");
    let _ = writeln!(out, "access_log_format = {}", q(f.access_log_format.name()));
    let _ = writeln!(out, "access_log_explain = {}", f.access_log_explain);
    let _ = writeln!(out, "redirect_code = {}", f.redirect_code);
    let b = f.retry_budget;
    let _ = writeln!(out, "retry_budget = \"{}%\"\nretry_min_per_sec = {}", b.percent, b.min_per_sec);
    let _ = writeln!(out, "splice = {}", q(f.splice.name()));
}

fn pool(out: &mut String, p: &PoolConfig) {
    let names = p.names.iter().map(|n| match n {
        NameSpec::Host { host, port, weight: w @ 2.. } => {
            format!("{{ address = {}, weight = {w} }}", q(&format!("{host}:{port}")))
        }
        n => q(&n.to_string()),
    });
    let servers: Vec<String> = p.servers.iter().map(server).chain(names).collect();
    let _ = write!(out, "\n[[pool]]\nname = {}\nservers = [{}]\n", q(&p.name), servers.join(", "));
    let off = match p.health() {
        Some(h) => format!("{} (implied by spawn_cmd)", fmt_health_check(&h.kind)),
        None => "off".into(),
    };
    opt(out, "health_check", p.health_check.as_ref().map(|c| q(&fmt_health_check(c))), &off);
    let _ = write!(
        out,
        "health_interval = {}\nhealth_timeout = {}\nrise = {}\nfall = {}\nmax_fails = {}\nfail_timeout = {}\n",
        q(&fmt_duration(p.health_interval)),
        q(&fmt_duration(p.health_timeout)),
        p.rise,
        p.fall,
        p.fail_policy.max_fails,
        q(&fmt_duration(p.fail_policy.fail_timeout)),
    );
    opt(out, "slow_start", p.slow_start.map(|d| q(&fmt_duration(d))), "off");
    let e = p.eject;
    let _ = writeln!(
        out,
        "eject_after = {}{}\neject_base = {}\neject_max_percent = {}",
        e.after,
        if e.after == 0 { "  # off" } else { "" },
        q(&fmt_duration(e.base)),
        e.max_percent
    );
    opt(out, "spawn_cmd", p.spawn_cmd.as_deref().map(q), "none");
    opt(out, "replicas", p.replicas.map(|n| n.to_string()), "none");
    let interval = p.resolve_interval.map(|d| q(&fmt_duration(d)));
    opt(out, "resolve_interval", interval, "names resolved once, at load");
    let resolvers: Vec<String> = p.resolvers.iter().map(|r| q(&r.to_string())).collect();
    let resolvers = (!resolvers.is_empty()).then(|| format!("[{}]", resolvers.join(", ")));
    opt(out, "resolvers", resolvers, "the system's");
    let _ = writeln!(out, "send_proxy = {}", q(&crate::config::values::fmt_send_proxy(p.send_proxy)));
    match &p.backend_tls {
        None => {
            let _ = writeln!(out, "backend_tls = \"off\"");
        }
        Some(t) => {
            let _ = writeln!(out, "backend_tls = {}", q(t.mode.name()));
            opt(out, "backend_ca", t.ca.as_ref().map(|c| q(&c.display().to_string())), "none");
            opt(out, "backend_sni", t.sni.as_ref().map(|s| q(s)), "the backend's IP address");
        }
    }
}
