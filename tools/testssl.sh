#!/usr/bin/env bash
# testssl.sh (Debian package testssl.sh) against an lbproxy TLS frontend:
# protocols, cipher categories, forward secrecy, server defaults and the
# known vulnerabilities; writes measurements/tls/<YYYY-MM-DD-HHMM>/report.md (the verdict
# lines) and testssl.csv (everything it found).
#
#   bash tools/testssl.sh            (OUT=DIR to write elsewhere)
#
# The certificate is made here (a throwaway CA), so testssl's complaints
# about trust and revocation are expected and listed apart from the rest.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# A new dated folder per run (`latest` points at the newest) unless OUT names one.
out=${OUT:-$(python3 "$root/tools/provenance.py" --run-dir "$root/measurements/tls")}
command -v testssl >/dev/null || { echo "testssl is missing: apt-get install testssl.sh" >&2; exit 2; }
(cd "$root" && cargo build --release --quiet --bin lbproxy --example http_backend)
bin=$root/target/release
work=$(mktemp -d)
# pids, the cleanup trap, free_port, wait_port.
source "$root/tools/bench-lib.sh"
mkdir -p "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=lbproxy test CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=a.test" \
    -keyout "$work/a.key" -out "$work/a.csr" 2>/dev/null
echo "subjectAltName=DNS:a.test" >"$work/a.ext"
openssl x509 -req -days 2 -in "$work/a.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -extfile "$work/a.ext" -out "$work/a.pem" 2>/dev/null

"$bin/examples/http_backend" --port 0 --id 1 >"$work/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/backend.log" && break; sleep 0.05; done
backend=$(sed -n 's/^listening on //p' "$work/backend.log")
port=$(free_port)
"$bin/lbproxy" --mode http --bind 127.0.0.1 --port "$port" --backend "$backend" --stats-interval 0 \
    --tls-cert "$work/a.pem" --tls-key "$work/a.key" >"$work/lb.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/lb.log" && break; sleep 0.05; done

rm -f "$out/testssl.csv"
testssl --quiet --color 0 --warnings off --ip 127.0.0.1 -p -s -f -S -U --csvfile "$out/testssl.csv" \
    "a.test:$port" >"$work/testssl.txt" 2>&1 || true

# CSV columns: id, fqdn/ip, port, severity, finding, cve, cwe.
summary() {
    python3 - "$out/testssl.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
trust = ("cert_trust", "cert_chain_of_trust", "cert_caIssuers", "cert_crlDistributionPoints", "cert_ocspURL",
         "OCSP_stapling", "cert_revocation", "DNS_CAArecord", "cert_expirationStatus", "cert_validityPeriod",
         "cert_notAfter")
def table(rs):
    print("| check | severity | finding |")
    print("|---|---|---|")
    for r in rs:
        print(f"| `{r[0]}` | {r[3]} | {r[4].replace('|', '/')} |")
proto = [r for r in rows if r[0] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "ALPN")]
bad = [r for r in rows if r[3] in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN") and not r[0].startswith(trust)]
expected = [r for r in rows if r[3] in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN") and r[0].startswith(trust)]
print("## Protocols\n"); table(proto)
print("\n## Findings of severity LOW or above (not about the throwaway certificate)\n")
if bad: table(bad)
else: print("None.")
print("\n## Expected for a throwaway test CA (trust, revocation, CAA)\n"); table(expected)
ciphers = [r for r in rows if r[0].startswith("cipherlist_") or r[0].startswith("FS")]
print("\n## Cipher categories and forward secrecy\n"); table(ciphers)
vulns = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS", "BREACH",
         "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4")
print("\n## Known vulnerabilities\n"); table([r for r in rows if r[0].startswith(vulns)])
EOF
}

{
    echo "# TLS frontend checked by testssl.sh"
    echo
    echo "Written by \`bash tools/testssl.sh\` at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'); $(testssl --version 2>/dev/null | grep -o 'testssl *[0-9.]*' | head -1),"
    echo "$(openssl version); lbproxy release build, \`--mode http --tls-cert a.pem --tls-key a.key\` (ECDSA P-256,"
    echo "signed by a CA made for the run). Command: \`testssl --ip 127.0.0.1 -p -s -f -S -U a.test:PORT\`."
    echo "Every finding is in [testssl.csv](testssl.csv)."
    echo
    summary
    echo
    python3 "$root/tools/provenance.py"
} >"$out/report.md"
echo "wrote $out/report.md"
python3 "$root/tools/provenance.py" --publish "$out"
