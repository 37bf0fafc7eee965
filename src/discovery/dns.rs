//! A small stub resolver: one question (A, AAAA or SRV) to the configured
//! DNS servers in turn over UDP, again over TCP when the answer comes back
//! truncated. Messages are built and parsed by hickory-proto; this file only
//! moves them. It runs on the discovery thread, never on the reactor, so
//! blocking sockets with timeouts are fine here.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// One SRV target: where, and the record's priority and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub host: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// What one question got: the records' data and the smallest TTL among them.
pub struct Answer<T> {
    pub records: Vec<T>,
    pub ttl: Option<Duration>,
}

/// The nameservers of /etc/resolv.conf (port 53), for SRV questions when
/// the pool names no `resolvers`.
pub fn system_nameservers() -> Vec<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The addresses of `host` (A and AAAA). One family failing is not an
/// error while the other has addresses (servers without IPv6 data may
/// refuse AAAA questions instead of answering them empty).
pub fn addresses(servers: &[SocketAddr], host: &str, timeout: Duration) -> Result<Answer<IpAddr>, String> {
    let (v4, v6) = match (ask(servers, host, RecordType::A, timeout), ask(servers, host, RecordType::AAAA, timeout)) {
        (Ok(a), Ok(b)) => (a, b),
        (Ok(a), Err(_)) if !a.0.is_empty() => (a, (Vec::new(), None)),
        (Err(_), Ok(b)) if !b.0.is_empty() => ((Vec::new(), None), b),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let ttl = [v4.1, v6.1].into_iter().flatten().min();
    let records =
        v4.0.into_iter()
            .chain(v6.0)
            .filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
    Ok(Answer { records, ttl })
}

/// The targets of the SRV record `name`.
pub fn srv(servers: &[SocketAddr], name: &str, timeout: Duration) -> Result<Answer<SrvTarget>, String> {
    let (data, ttl) = ask(servers, name, RecordType::SRV, timeout)?;
    let records = data
        .into_iter()
        .filter_map(|d| match d {
            RData::SRV(s) => Some(SrvTarget {
                host: s.target.to_ascii().trim_end_matches('.').to_string(),
                port: s.port,
                priority: s.priority,
                weight: s.weight,
            }),
            _ => None,
        })
        .collect();
    Ok(Answer { records, ttl })
}

/// Ask each server in turn until one answers; `Ok` with no records is an
/// empty answer (NXDOMAIN included: the name has no such records).
fn ask(
    servers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<(Vec<RData>, Option<Duration>), String> {
    if servers.is_empty() {
        return Err("no DNS server to ask (set resolvers, or a nameserver in /etc/resolv.conf)".into());
    }
    let qname = Name::from_ascii(fqdn(name)).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
    let mut errors = Vec::new();
    for &server in servers {
        match exchange(server, &qname, rtype, timeout) {
            Ok(m) => return answer_of(&m, &qname, rtype),
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    Err(format!("{rtype} {name}: {}", errors.join("; ")))
}

/// Names are asked as given, absolute (no search domains).
fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

fn answer_of(m: &Message, qname: &Name, rtype: RecordType) -> Result<(Vec<RData>, Option<Duration>), String> {
    match m.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        code => return Err(format!("{rtype} {qname}: the server answered {code}")),
    }
    // Records of the asked type, whatever name they carry (a CNAME chain
    // ends in them); CNAMEs themselves are skipped.
    let records: Vec<_> = m.answers.iter().filter(|r| r.record_type() == rtype).collect();
    let ttl = records.iter().map(|r| Duration::from_secs(u64::from(r.ttl))).min();
    Ok((records.into_iter().map(|r| r.data.clone()).collect(), ttl))
}

/// The records an answer in `bytes` holds for each question type lbproxy
/// asks (A, AAAA, SRV), as the discovery thread would use them: the body of
/// the `dns_answer` fuzz target. Never panics, whatever the bytes.
pub fn records_in(bytes: &[u8]) -> Result<Vec<String>, String> {
    let m = Message::from_vec(bytes).map_err(|e| format!("malformed answer: {e}"))?;
    let qname = m.queries.first().map(|q| q.name().clone()).ok_or("an answer without its question")?;
    let mut out = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA, RecordType::SRV] {
        let Ok((data, _)) = answer_of(&m, &qname, rtype) else { continue };
        out.extend(data.iter().map(|d| match d {
            RData::SRV(s) => format!("{} {}", s.target.to_ascii(), s.port),
            d => d.to_string(),
        }));
    }
    Ok(out)
}

fn query_bytes(qname: &Name, rtype: RecordType) -> Result<(u16, Vec<u8>), String> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname.clone(), rtype));
    let bytes = m.to_vec().map_err(|e| format!("cannot encode the question: {e}"))?;
    Ok((m.metadata.id, bytes))
}

/// One question and its answer: UDP, then TCP if the answer was truncated.
fn exchange(server: SocketAddr, qname: &Name, rtype: RecordType, timeout: Duration) -> Result<Message, String> {
    let (id, query) = query_bytes(qname, rtype)?;
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.send(&query).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    // Skip stray datagrams (a late answer to an earlier question), bounded.
    for _ in 0..8 {
        let n = sock.recv(&mut buf).map_err(|e| format!("no answer within {timeout:?} ({e})"))?;
        let Ok(m) = Message::from_vec(&buf[..n]) else { continue };
        if m.metadata.id != id || m.queries.first().map(|q| q.name() != qname).unwrap_or(true) {
            continue;
        }
        if m.metadata.truncation {
            return exchange_tcp(server, &query, id, timeout);
        }
        return Ok(m);
    }
    Err("only unrelated datagrams came back".into())
}

fn exchange_tcp(server: SocketAddr, query: &[u8], id: u16, timeout: Duration) -> Result<Message, String> {
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(|e| format!("TCP: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).map_err(|e| format!("TCP: {e}"))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| format!("TCP: {e}"))?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).map_err(|e| format!("TCP: {e}"))?;
    let m = Message::from_vec(&buf).map_err(|e| format!("TCP: malformed answer: {e}"))?;
    if m.metadata.id != id {
        return Err("TCP: answer to another question".into());
    }
    Ok(m)
}
