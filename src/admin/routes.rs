//! Admin routes: check one request (method, path, JSON body) and name the
//! `Command` it asks for, or the error `Reply`.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::backend::AdminState;
use crate::config::parse_backend_list;
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
    SetState {
        addr: SocketAddr,
        state: AdminState,
    },
    SetPolicy(PolicyKind),
    Stats,
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

/// `{"n": N, "hostnames": [...]}`: N, and the hostnames as addresses (at most N).
/// A backend named twice (in any spelling of its address) is one instance:
/// it is listed once and counts once toward N, so it neither gets double
/// weight nor makes /add spawn or /rm take one more.
fn membership(body: &[u8], which: &str) -> Result<(usize, Vec<SocketAddr>), Reply> {
    let m: Membership = parse_json(body)?;
    if m.hostnames.len() > m.n {
        return Err(Reply::failure(400, &format!("Length of hostname list is more than {which} instances")));
    }
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(m.hostnames.len());
    for a in parse_addrs(&m.hostnames)? {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    Ok((m.n - (m.hostnames.len() - addrs.len()), addrs))
}

fn parse_addrs(names: &[String]) -> Result<Vec<SocketAddr>, Reply> {
    names.iter().map(|n| parse_backend_list(n).map(|l| l.0[0].addr).map_err(|e| Reply::failure(400, &e))).collect()
}

/// Check one request and name what it asks for.
pub fn route(method: &str, path: &str, body: &[u8]) -> Result<Command, Reply> {
    let path = path.split('?').next().unwrap_or("/");
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
        "/metrics" => allow(&["GET"]).map(|_| Command::Metrics),
        "/reload" => allow(&["POST"]).map(|_| Command::Reload),
        "/add" => {
            allow(&["POST"])?;
            let (n, hostnames) = membership(body, "newly added")?;
            Ok(Command::Add { n, hostnames })
        }
        "/rm" => {
            allow(&["DELETE", "POST"])?;
            let (n, hostnames) = membership(body, "removable")?;
            Ok(Command::Remove { n, hostnames })
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
            let addr = parse_addrs(&[addr.to_string()])?[0];
            Ok(Command::SetState { addr, state })
        }
        _ => Err(not_found(path)),
    }
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
        assert_eq!(route("PUT", "/policy", br#"{"policy":"source"}"#), Ok(Command::SetPolicy(PolicyKind::IpHash)));
        assert_eq!(route("PUT", "/policy", br#"{"policy":"fastest"}"#).unwrap_err().status, 400);
    }
}
