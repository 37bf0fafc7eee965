#!/usr/bin/env bash
# Differential request-smuggling check (issue 15, part 2): ~20 ambiguous
# requests, sent as raw bytes through lbproxy (--mode http), HAProxy (mode
# http) and nginx (proxy_pass), each in front of examples/lenient_backend,
# which logs every request it parses (`REQ <id> <METHOD> <TARGET> ...`).
# Writes measurements/smuggling-differential/<YYYY-MM-DD-HHMM>/report.md (or OUT=DIR).
#
#   bash tools/smuggling-diff.sh
#
# Per case and proxy, everything is started fresh (backend, then proxy), the
# attack is sent on one connection, then a "victim" sends `GET /victim` on a
# second one: a proxy that keeps the backend connection (lbproxy
# --backend-conn persistent --pool-size 1, nginx keepalive 1, HAProxy
# http-reuse always) hands it whatever the attack left there. A case is
# consistent when the backend never parsed the hidden `GET /SMUGGLED`
# without a client getting its answer as its own response (counted by the
# backend's X-Server header), and the victim got its own answer. Every wait
# is bounded.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for tool in haproxy nginx python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y haproxy nginx)" >&2; exit 2; }
done
echo "building lbproxy and examples/lenient_backend (release)"
cargo build --release --quiet --bin lbproxy --example lenient_backend
# A new dated folder per run (`latest` points at the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/smuggling-differential)}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

LBPROXY=$root/target/release/lbproxy BACKEND=$root/target/release/examples/lenient_backend WORK=$work \
    OUT=$OUT/report.md \
    HAPROXY_VERSION="$(haproxy -v | head -1)" NGINX_VERSION="$(nginx -v 2>&1)" \
    timeout 900 python3 - <<'PYEOF'
import os, re, signal, socket, subprocess, time

LBPROXY, BACKEND, WORK, OUT = (os.environ[k] for k in ("LBPROXY", "BACKEND", "WORK", "OUT"))
SMUG = b"GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"

def post(headers, body):
    return b"POST /attack HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body

def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"

CASES = [
    ("baseline GET", b"GET /attack HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("CL.TE: CL covers a chunked end and a request",
     post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(b"0\r\n\r\n" + SMUG), b"0\r\n\r\n" + SMUG)),
    ("TE.CL: chunk holds a request, CL: 4",
     post(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", chunk(SMUG) + b"0\r\n\r\n")),
    ("TE: xchunked + CL", post(b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUG)),
    ("TE with space before colon + CL",
     post(b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n" % len(b"0\r\n\r\n" + SMUG), b"0\r\n\r\n" + SMUG)),
    ("TE: chunked then TE: identity",
     post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n" + SMUG)),
    ("TE: chunked, identity (chunked not last)", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n" + SMUG)),
    ("TE obs-folded + CL",
     post(b"Transfer-Encoding:\r\n chunked\r\nContent-Length: %d\r\n" % len(b"0\r\n\r\n" + SMUG), b"0\r\n\r\n" + SMUG)),
    ("TE in HTTP/1.0", b"POST /attack HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(SMUG) + b"0\r\n\r\n"),
    ("two different Content-Length", post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUG), SMUG)),
    ("comma-listed Content-Length: 0, N", post(b"Content-Length: 0, %d\r\n" % len(SMUG), SMUG)),
    ("Content-Length: N twice (same value)", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
    ("Content-Length: +N", post(b"Content-Length: +%d\r\n" % len(SMUG), SMUG)),
    ("obs-fold in an ordinary header", b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("bare LF line ends", b"GET /attack HTTP/1.1\nHost: x\n\n"),
    ("bare LF hides a Content-Length",
     b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: %d\r\n\r\n" % len(SMUG) + SMUG),
    ("NUL in a header value", b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("bare CR in a header value", b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"),
    ("oversized chunk size (2^68)", post(b"Transfer-Encoding: chunked\r\n", b"100000000000000005\r\nhello\r\n0\r\n\r\n" + SMUG)),
    ("chunk extension ended by bare LF", post(b"Transfer-Encoding: chunked\r\n", b"0;a\n\n" + SMUG)),
    ("last chunk then bare-LF empty line", post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\n" + SMUG)),
    ("chunk size `5 6`", post(b"Transfer-Encoding: chunked\r\n", b"5 6\r\nhello\r\n0\r\n\r\n")),
    ("Connection: Content-Length", post(b"Content-Length: %d\r\nConnection: Content-Length\r\n" % len(SMUG), SMUG)),
    ("request inside a CL body, then a pipelined GET",
     post(b"Content-Length: %d\r\n" % len(SMUG), SMUG) + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"),
]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, deadline=5.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return True
        except OSError:
            time.sleep(0.05)
    return False

def start_backend(log):
    p = subprocess.Popen([BACKEND, "--port", "0", "--id", "1"], stdout=open(log, "wb"), stderr=subprocess.DEVNULL)
    end = time.time() + 5
    while time.time() < end:
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", open(log, "rb").read())
        if m: return p, int(m.group(1))
        time.sleep(0.05)
    raise SystemExit("lenient_backend did not start")

def start_lbproxy(port, bport, d):
    return subprocess.Popen([LBPROXY, "--mode", "http", "--bind", "127.0.0.1", "--port", str(port), "--backend",
                             f"127.0.0.1:{bport}", "--backend-conn", "persistent", "--pool-size", "1",
                             "--stats-interval", "0"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/lbproxy.log", "wb"))

def start_haproxy(port, bport, d):
    cfg = f"""global
    maxconn 100
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    http-reuse always
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    server s1 127.0.0.1:{bport}
"""
    open(f"{d}/haproxy.cfg", "w").write(cfg)
    return subprocess.Popen(["haproxy", "-db", "-f", f"{d}/haproxy.cfg"], stdout=subprocess.DEVNULL,
                            stderr=open(f"{d}/haproxy.log", "wb"))

def start_nginx(port, bport, d):
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(f"{d}/{sub}", exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    cfg = f"""{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    upstream u {{ server 127.0.0.1:{bport}; keepalive 1; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
"""
    open(f"{d}/nginx.conf", "w").write(cfg)
    return subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf"], stdout=subprocess.DEVNULL,
                            stderr=open(f"{d}/nginx.log", "wb"))

def exchange(port, data, idle=1.0, total=4.0):
    """Send `data`, read until the peer closes, `idle` s pass without bytes, or `total` s."""
    got = b""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(data)
        end = time.time() + total
        s.settimeout(idle)
        while time.time() < end:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b: break
            got += b
        s.close()
    except OSError as e:
        got += f"[{e.__class__.__name__}]".encode()
    return got

def statuses(raw):
    return re.findall(rb"HTTP/1\.[01] (\d{3})", raw)

def summary(raw):
    st = statuses(raw)
    if not st: return "no answer" if not raw.startswith(b"[") else raw.decode()
    return " ".join(s.decode() for s in st)

def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try: p.wait(timeout=3)
        except subprocess.TimeoutExpired: p.kill(); p.wait(timeout=3)

PROXIES = [("lbproxy", start_lbproxy), ("HAProxy", start_haproxy), ("nginx", start_nginx)]
results = []
for i, (name, raw) in enumerate(CASES):
    row = []
    for pname, start in PROXIES:
        d = f"{WORK}/{i}-{pname}"; os.makedirs(d)
        be, bport = start_backend(f"{d}/backend.log")
        port = free_port()
        px = start(port, bport, d)
        try:
            if not wait_port(port):
                row.append(dict(answer="proxy did not start", victim="", reqs=[], ok=False)); continue
            attack = exchange(port, raw)
            victim = exchange(port, b"GET /victim HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
        finally:
            stop(px); stop(be)
        reqs = [l.split()[2] + " " + l.split()[3] for l in open(f"{d}/backend.log").read().splitlines()
                if l.startswith("REQ ")]
        answered = len(re.findall(rb"(?im)^x-server:", attack)) + len(re.findall(rb"(?im)^x-server:", victim))
        victim_ok = b"GET /victim" in victim
        # The backend answered every request it parsed with X-Server (its 400 for
        # a bad body has none, which is not a desync): only a parsed /SMUGGLED
        # that no client got as its own answer, or a victim served with
        # something else, is one.
        smuggled = any(q.endswith(" /SMUGGLED") for q in reqs) and answered < len(reqs)
        ok = not smuggled and victim_ok
        row.append(dict(answer=summary(attack), victim=summary(victim) + ("" if victim_ok else " (not its own)"),
                        reqs=reqs, ok=ok))
        print(f"{i:2} {pname:8} {name[:40]:40} answer={row[-1]['answer']:12} backend={reqs} ok={ok}", flush=True)
    results.append((name, raw, row))

def cell(r):
    reqs = "<br>".join(f"`{q}`" for q in r["reqs"]) or "none"
    mark = "" if r["ok"] else " **MISMATCH**"
    return f"{r['answer']} / victim {r['victim']} / backend parsed: {reqs}{mark}"

with open(OUT, "w") as f:
    f.write("# Request smuggling: lbproxy, HAProxy and nginx on the same ambiguous requests\n\n")
    f.write(f"Written by `bash tools/smuggling-diff.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (issue 15, part 2).\n\n")
    f.write(f"- lbproxy: this tree, `--mode http --backend-conn persistent --pool-size 1`.\n")
    f.write(f"- {os.environ['HAPROXY_VERSION']}: `mode http`, `http-reuse always`, defaults otherwise.\n")
    f.write(f"- {os.environ['NGINX_VERSION']}: `proxy_pass` to an upstream with `keepalive 1`, `proxy_http_version 1.1`.\n")
    f.write("- Backend: `examples/lenient_backend` (LF line ends, last Content-Length wins, TE chunked over CL, "
            "chunk size = leading hex digits); it logs each request it parses.\n\n")
    f.write("Per case and proxy, all fresh: the attack on one connection (answer read until close or 1 s idle), then "
            "`GET /victim` on a second connection. Each cell: status codes the attacker read / the victim's / the "
            "requests the backend parsed. **MISMATCH**: the backend parsed the hidden `GET /SMUGGLED` and no client "
            "got its answer as its own response, or the victim did not get `/victim`'s answer: the proxy and the backend disagreed on "
            "where a request ends.\n\n")
    f.write("| # | case | lbproxy | HAProxy | nginx |\n|---:|---|---|---|---|\n")
    for i, (name, raw, row) in enumerate(results):
        f.write(f"| {i} | {name} | " + " | ".join(cell(r) for r in row) + " |\n")
    f.write("\nMismatches: " + ", ".join(f"{p}: {sum(not r[j]['ok'] for _, _, r in results)}"
                                        for j, (p, _) in enumerate(PROXIES)) + f" of {len(results)} cases.\n")
    f.write("\n## The raw requests\n\n")
    for i, (name, raw, _) in enumerate(results):
        f.write(f"{i}. {name}: `{raw!r}`\n")
print("wrote", OUT)
PYEOF
python3 tools/provenance.py >>"$OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
