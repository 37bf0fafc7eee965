//! Admin routes: check one request (method, path, JSON body) and name the
//! `Command` it asks for, or the error `Reply`.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::backend::AdminState;
use crate::config::{Target, parse_backend, parse_target};
use crate::http::head;
use crate::policy::PolicyKind;

/// A checked admin request, for the reactor to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ListReplicas,
    /// Add `hostnames`, and spawn `n - hostnames.len()` more when that is positive.
    Add {
        n: usize,
        hostnames: Vec<SocketAddr>,
    },
    /// Remove (drain, then drop) `hostnames`, plus `n - hostnames.len()` more.
    Remove {
        n: usize,
        hostnames: Vec<SocketAddr>,
    },
    /// `Add` or `Remove` of backends given by host name: looked up on the
    /// resolver thread (a lookup can block for seconds), then carried out.
    Lookup {
        remove: bool,
        n: usize,
        hostnames: Vec<String>,
    },
    SetState {
        addr: SocketAddr,
        state: AdminState,
    },
    SetPolicy(PolicyKind),
    Stats,
    /// What frontend `frontend`'s policy (and shadows) would pick now for `key`, and why.
    Explain {
        frontend: Option<String>,
        key: String,
    },
    Metrics,
    Dashboard,
    /// Read the configuration file again and apply it.
    Reload,
}

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Reply {
        Reply { status, content_type: "application/json", body: v.to_string() }
    }

    /// `{"message": ..., "status": "successful"}`
    pub fn success(message: Value) -> Reply {
        Reply::json(200, &json!({"message": message, "status": "successful"}))
    }

    /// `{"message": "<Error> ...", "status": "failure"}`
    pub fn failure(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({"message": format!("<Error> {message}"), "status": "failure"}))
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
            self.status,
            head::reason_phrase(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

#[derive(Deserialize)]
struct Membership {
    n: usize,
    #[serde(default)]
    hostnames: Vec<String>,
}

#[derive(Deserialize)]
struct PolicyBody {
    policy: String,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::failure(400, &format!("malformed JSON body: {e}")))
}

/// `{"n": N, "hostnames": [...]}` checked: at most N names, each `HOST:PORT`.
/// All literal addresses give `Add` or `Remove` at once; any host name gives
/// `Lookup`, so no lookup runs on the reactor thread.
fn membership(body: &[u8], remove: bool) -> Result<Command, Reply> {
    let m: Membership = parse_json(body)?;
    if m.hostnames.len() > m.n {
        let which = if remove { "removable" } else { "newly added" };
        return Err(Reply::failure(400, &format!("Length of hostname list is more than {which} instances")));
    }
    let mut addrs = Vec::with_capacity(m.hostnames.len());
    let mut named = false;
    for name in &m.hostnames {
        match parse_target(name).map_err(|e| Reply::failure(400, &e))? {
            Target::Addr(a) => addrs.push(a),
            Target::Name { .. } => named = true,
        }
    }
    if named {
        return Ok(Command::Lookup { remove, n: m.n, hostnames: m.hostnames });
    }
    Ok(membership_of(remove, m.n, m.hostnames.len(), addrs))
}

/// The `Add` or `Remove` for `given` names that came to `addrs`. A backend
/// named twice (in any spelling of its address) is one instance: it is
/// listed once and counts once toward N, so it neither gets double weight
/// nor makes /add spawn or /rm take one more.
pub fn membership_of(remove: bool, n: usize, given: usize, addrs: Vec<SocketAddr>) -> Command {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let n = n - (given - unique.len());
    if remove { Command::Remove { n, hostnames: unique } } else { Command::Add { n, hostnames: unique } }
}

/// Look every name up, in order (this blocks: the resolver thread's job).
/// The error names the host that failed.
pub fn lookup(hostnames: &[String]) -> Result<Vec<SocketAddr>, String> {
    hostnames.iter().map(|h| parse_backend(h)).collect()
}

/// Check one request and name what it asks for.
pub fn route(method: &str, path: &str, body: &[u8]) -> Result<Command, Reply> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let allow = |ok: &[&str]| -> Result<(), Reply> {
        if ok.contains(&method) {
            Ok(())
        } else {
            Err(Reply::failure(405, &format!("{method} not allowed on {path} (use {})", ok.join(" or "))))
        }
    };
    match path {
        "/" | "/dashboard" => allow(&["GET"]).map(|_| Command::Dashboard),
        "/rep" => allow(&["GET"]).map(|_| Command::ListReplicas),
        "/stats" => allow(&["GET"]).map(|_| Command::Stats),
        "/explain" => {
            allow(&["GET"])?;
            let param = |name: &str| query_param(query, name);
            let key = param("key")?.ok_or_else(|| {
                Reply::failure(400, "/explain needs key=K: the client IP, or the --hash-key value the frontend hashes")
            })?;
            Ok(Command::Explain { frontend: param("frontend")?, key })
        }
        "/metrics" => allow(&["GET"]).map(|_| Command::Metrics),
        "/reload" => allow(&["POST"]).map(|_| Command::Reload),
        "/add" => {
            allow(&["POST"])?;
            membership(body, false)
        }
        "/rm" => {
            allow(&["DELETE", "POST"])?;
            membership(body, true)
        }
        "/policy" => {
            allow(&["PUT", "POST"])?;
            let p: PolicyBody = parse_json(body)?;
            PolicyKind::from_str(&p.policy).map(Command::SetPolicy).map_err(|e| Reply::failure(400, &e))
        }
        p if p.starts_with("/backends/") => {
            let rest = &p["/backends/".len()..];
            let (addr, action) = rest.rsplit_once('/').ok_or_else(|| not_found(path))?;
            let state = match action {
                "drain" => AdminState::Draining,
                "enable" => AdminState::Enabled,
                "disable" => AdminState::Disabled,
                _ => return Err(not_found(path)),
            };
            allow(&["POST"])?;
            match parse_target(addr).map_err(|e| Reply::failure(400, &e))? {
                Target::Addr(addr) => Ok(Command::SetState { addr, state }),
                Target::Name { .. } => {
                    Err(Reply::failure(400, &format!("backend \"{addr}\": use its IP:PORT as /rep lists it")))
                }
            }
        }
        _ => Err(not_found(path)),
    }
}

/// Parameter `name` of a query string, percent-decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Result<Option<String>, Reply> {
    let Some(raw) = query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')) else {
        return Ok(None);
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| Reply::failure(400, &format!("bad percent escape in {name}={raw}")))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Some).map_err(|_| Reply::failure(400, &format!("{name}={raw} is not UTF-8")))
}

fn not_found(path: &str) -> Reply {
    Reply::failure(404, &format!("no such route: {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_errors() {
        assert_eq!(route("GET", "/rep", b""), Ok(Command::ListReplicas));
        assert_eq!(route("GET", "/stats?x=1", b""), Ok(Command::Stats));
        let explain = route("GET", "/explain?frontend=web&key=user%2042+x", b"").unwrap();
        assert_eq!(explain, Command::Explain { frontend: Some("web".into()), key: "user 42 x".into() });
        let no_key = route("GET", "/explain?frontend=web&keys=1", b"").unwrap_err();
        assert!(no_key.status == 400 && no_key.body.contains("needs key=K"), "{}", no_key.body);
        assert!(route("GET", "/explain?key=%zz", b"").unwrap_err().body.contains("key=%zz"));
        assert_eq!(route("POST", "/explain?key=1", b"").unwrap_err().status, 405);
        let add = route("POST", "/add", br#"{"n":2,"hostnames":["127.0.0.1:8004"]}"#).unwrap();
        assert_eq!(add, Command::Add { n: 2, hostnames: vec!["127.0.0.1:8004".parse().unwrap()] });
        let twice = route("POST", "/add", br#"{"n":3,"hostnames":["127.0.0.1:8004","127.0.0.1:8004"]}"#).unwrap();
        assert_eq!(twice, Command::Add { n: 2, hostnames: vec!["127.0.0.1:8004".parse().unwrap()] });
        let too_many = route("POST", "/add", br#"{"n":1,"hostnames":["127.0.0.1:1","127.0.0.1:2"]}"#).unwrap_err();
        assert_eq!(too_many.status, 400);
        assert!(too_many.body.contains("Length of hostname list is more than newly added instances"));
        assert!(too_many.body.contains("\"status\":\"failure\""));
        assert_eq!(route("POST", "/add", b"{nope").unwrap_err().status, 400);
        assert!(route("POST", "/add", br#"{"n":1,"hostnames":["foo:bar"]}"#).unwrap_err().body.contains("foo:bar"));
        assert_eq!(route("GET", "/add", b"").unwrap_err().status, 405);
        assert_eq!(route("GET", "/nope", b"").unwrap_err().status, 404);
        assert_eq!(
            route("POST", "/backends/127.0.0.1:8001/drain", b""),
            Ok(Command::SetState { addr: "127.0.0.1:8001".parse().unwrap(), state: AdminState::Draining })
        );
        assert_eq!(route("POST", "/backends/127.0.0.1:8001/explode", b"").unwrap_err().status, 404);
        assert!(route("POST", "/backends/db.example:80/drain", b"").unwrap_err().body.contains("db.example:80"));
        assert_eq!(route("PUT", "/policy", br#"{"policy":"source"}"#), Ok(Command::SetPolicy(PolicyKind::IpHash)));
        assert_eq!(route("PUT", "/policy", br#"{"policy":"fastest"}"#).unwrap_err().status, 400);
    }

    #[test]
    fn names_are_looked_up_later_and_literals_at_once() {
        let named = route("POST", "/add", br#"{"n":2,"hostnames":["127.0.0.1:1","web.example:80"]}"#).unwrap();
        let hostnames = vec!["127.0.0.1:1".to_string(), "web.example:80".to_string()];
        assert_eq!(named, Command::Lookup { remove: false, n: 2, hostnames });
        let rm = route("DELETE", "/rm", br#"{"n":1,"hostnames":["web.example:80"]}"#).unwrap();
        assert!(matches!(rm, Command::Lookup { remove: true, n: 1, .. }));
        // A bad port is answered at once, name or not.
        let bad = route("POST", "/add", br#"{"n":1,"hostnames":["web.example:0"]}"#).unwrap_err();
        assert!(bad.body.contains("web.example:0"), "{}", bad.body);
        // What the lookup gave is deduplicated like literal addresses.
        let a: SocketAddr = "127.0.0.1:5".parse().unwrap();
        assert_eq!(membership_of(false, 3, 2, vec![a, a]), Command::Add { n: 2, hostnames: vec![a] });
        assert_eq!(lookup(&["127.0.0.1:5".to_string()]), Ok(vec![a]));
        assert!(lookup(&["127.0.0.1:x".to_string()]).unwrap_err().contains("127.0.0.1:x"));
    }
}
