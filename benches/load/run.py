#!/usr/bin/env python3
"""poolgate's load harness: one command, bounded in time, loopback only.

Measures, in ONE run and for the same small response from one upstream, req/s, p50/p99
latency and the proxy's CPU time per request for:
  1 direct to the upstream          5 Apache + mod_auth_openidc, valid session
  2 poolgate, public path           6 poolgate, valid app session
  3 nginx proxy_pass (keepalive)    7 poolgate, bearer token
  4 nginx + auth_request
then the scaling runs (10,000 pools; 1,000,000 revoked sessions and 100,000 rotating
session cookies; 20,000 active users; RSS), a key rotation and a reload in the middle of a run, and the login
round trip. Every proxy is pinned to CPU 0, the load generator and upstream to CPU 1.
The targets take turns for --rounds rounds; every figure is the median of its rounds, and
every ratio the median of the ratios within a round. Results: a table on stdout and JSON under benches/load/results/.

    benches/load/run            (installs nginx, apache2 + mod_auth_openidc, wrk and oha)
"""

import argparse
import base64
import hashlib
import html
import http.client
import json
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "benches/load/.tools/bin"
PROXY_CPU, LOAD_CPU = "0", "1"
CLK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --- tools ---------------------------------------------------------------------------

def ensure_tools():
    missing = [p for p, b in [("nginx", "/usr/sbin/nginx"), ("apache2", "/usr/sbin/apache2"),
                              ("libapache2-mod-auth-openidc", "/usr/lib/apache2/modules/mod_auth_openidc.so"),
                              ("wrk", "/usr/bin/wrk")] if not os.path.exists(b)]
    if missing:
        log("installing", *missing)
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (TOOLS / "oha").exists():
        log("installing oha (cargo install)")
        run(["cargo", "install", "--locked", "--root", str(TOOLS.parent), "oha"])
    log("building poolgate (release) and the cookie minter")
    run(["cargo", "build", "--release", "--quiet", "--bin", "poolgate", "--example", "mint_cookies"], cwd=ROOT)


# --- processes -------------------------------------------------------------------------

def descendants(pid):
    out, frontier = {pid}, [pid]
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    while frontier:
        p = frontier.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                frontier.append(c)
    return out


def cpu_seconds(pid):
    total = 0
    for p in descendants(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK


def settle(servers, seconds=20):
    """Waits until every server is idle: a saturated proxy (Apache at half rate) works off
    its backlog after the load stops, and would take the next run's CPU."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        before = sum(cpu_seconds(s.proc.pid) for s in servers)
        time.sleep(0.5)
        if sum(cpu_seconds(s.proc.pid) for s in servers) - before < 0.05:
            return


def sleeps(pid):
    """Times the process tree went to sleep waiting (voluntary context switches, all
    threads): each is a wake-up that whoever sends to it pays for."""
    total = 0
    for p in descendants(pid):
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", (task / "status").read_text(), re.M)
                total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def rss_mib(pid):
    kb = 0
    for p in descendants(pid):
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            kb += int(m.group(1)) if m else 0
        except OSError:
            pass
    return kb / 1024


class Server:
    def __init__(self, name, cmd, cpu, log_path, env=None):
        self.name = name
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(["taskset", "-c", cpu, *cmd], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env or os.environ, start_new_session=True)

    def stop(self):
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()


# --- http ------------------------------------------------------------------------------

def request(port, host, path, method="GET", headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {"Host": host, **(headers or {})}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    out = (r.status, r.getheaders(), data)
    c.close()
    return out


def header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def set_cookies(headers):
    return {c.split("=", 1)[0]: c.split(";", 1)[0].split("=", 1)[1] for c in header(headers, "set-cookie")}


def location(headers):
    return urllib.parse.urlsplit(header(headers, "location")[0])


def cookie_header(jar):
    return "; ".join(f"{k}={v}" for k, v in jar.items() if v)


def wait_ready(url_port, path="/readyz", host="127.0.0.1", seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if request(url_port, host, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"not ready: {host}:{url_port}{path}")


# --- poolgate sign-in, as a browser and as an OIDC client -----------------------------

def portal_login(pg, user, password, portal_jar, authorize_path):
    """Runs the login page for an authorize request; returns the redirect (with a code)."""
    portal = f"127.0.0.1:{pg}"
    st, h, body = request(pg, portal, authorize_path, headers={"Cookie": cookie_header(portal_jar), "Accept": "text/html"})
    portal_jar.update(set_cookies(h))
    if st in (302, 303):
        return location(h)
    # The page escapes what it writes into attributes; a browser reads it back unescaped.
    fields = {k: html.unescape(v) for k, v in re.findall(r'name="(csrf|request)" value="([^"]*)"', body)}
    form = urllib.parse.urlencode({**fields, "username": user, "password": password})
    # A browser says where the form was posted from (the portal checks it against CSRF).
    st, h, body = request(pg, portal, "/login", "POST", {"Cookie": cookie_header(portal_jar), "Origin": f"http://{portal}",
                                                             "Content-Type": "application/x-www-form-urlencoded"}, form)
    assert st in (302, 303), f"login failed: {st} {re.sub(r'<[^>]+>', ' ', body.split('<body')[-1])[:600]}"
    portal_jar.update(set_cookies(h))
    return location(h)


def app_session(pg, app_host, user, password, portal_jar):
    """Signs in to an app through its portal; returns the app cookie header."""
    # With its port, as a browser sends it: the callback must match the registered one exactly.
    host = f"{app_host}:{pg}"
    st, h, _ = request(pg, host, "/.poolgate/login?return_to=/")
    app_jar = set_cookies(h)
    auth = location(h)
    cb = portal_login(pg, user, password, portal_jar, f"{auth.path}?{auth.query}")
    st, h, _ = request(pg, host, f"{cb.path}?{cb.query}", headers={"Cookie": cookie_header(app_jar)})
    assert st in (302, 303), f"callback failed: {st}"
    app_jar.update(set_cookies(h))
    return f"poolgate={app_jar['poolgate']}"


def bearer_token(pg, app, app_host, portal_jar):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = f"http://{app_host}:{pg}/.poolgate/callback"
    q = urllib.parse.urlencode({"client_id": app, "redirect_uri": redirect, "response_type": "code", "scope": "openid",
                                "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    st, h, _ = request(pg, "127.0.0.1", f"/oidc/authorize?{q}", headers={"Cookie": cookie_header(portal_jar)})
    code = urllib.parse.parse_qs(location(h).query)["code"][0]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                                   "client_id": app, "code_verifier": verifier})
    st, h, body = request(pg, "127.0.0.1", "/oidc/token", "POST", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    assert st == 200, body
    return json.loads(body)["access_token"]


def apache_session(ap, pg, portal_jar, host):
    browser = {"Accept": "text/html"}
    st, h, _ = request(ap, host, "/", headers=browser)
    assert st == 302, f"apache did not redirect to sign in: {st}"
    jar = set_cookies(h)
    auth = location(h)
    cb = portal_login(pg, "", "", portal_jar, f"{auth.path}?{auth.query}")
    st, h, body = request(ap, host, f"{cb.path}?{cb.query}", headers={"Cookie": cookie_header(jar), **browser})
    jar.update(set_cookies(h))
    assert st in (302, 303), f"apache callback: {st} {body[:300]}"
    return cookie_header(jar)


# --- config ----------------------------------------------------------------------------

def poolgate_config(d, http_port, admin, upstream, extra_pools=0, apache_port=None):
    pools = [f'''
[pools.bench]
name = "Bench"
portal = "127.0.0.1"
plan = "enterprise"
session_idle = "10h"

[pools.bench.apps.app]
hosts = ["app.bench.localhost"]
upstreams = ["{upstream}"]
public_paths = ["/public"]

[pools.bench.apps.apache]
hosts = ["apache.bench.localhost"]
upstreams = ["{upstream}"]
redirect_uris = ["http://apache.bench.localhost:{apache_port}/oidc_callback"]
''']
    for i in range(extra_pools):
        pools.append(f'[pools.p{i}]\nname = "P{i}"\nportal = "login.p{i}.localhost"\n[pools.p{i}.apps.a]\nhosts = ["a.p{i}.localhost"]\nupstreams = ["{upstream}"]\n')
    (d / "poolgate.toml").write_text(f'''version = 1
[listen]
http = "127.0.0.1:{http_port}"
[admin]
listen = "127.0.0.1:{admin}"
token_file = "admin.token"
[proxy]
threads = 1
[store]
url = "sqlite:data/poolgate.db"
''' + "\n".join(pools))
    (d / "admin.token").write_text("bench-admin-token-0123456789\n")
    return d / "poolgate.toml"


def auth_request_server(port, auth, user_header, check_headers=""):
    """An nginx server in front of `app` that asks `auth` (an upstream and path) about every
    request (auth_request) and passes the user it answers with (`user_header`, as nginx
    names it) on as X-Poolgate-User."""
    return f'''  server {{ listen 127.0.0.1:{port};
    location = /auth {{ internal; proxy_pass http://{auth}; proxy_http_version 1.1;
      proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_set_header Connection "";{check_headers} }}
    location / {{ auth_request /auth; auth_request_set $user $upstream_http_{user_header};
      proxy_set_header X-Poolgate-User $user; proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}'''


def nginx_conf(d, upstream_port, proxy_port, auth_port, auth_endpoint_port, pinned_upstream):
    common = f"pid {d}/nginx-%s.pid; error_log {d}/nginx-%s.err warn; worker_processes 1; daemon off;\nevents {{ worker_connections 4096; }}\n"
    if pinned_upstream:
        body = f'''http {{ access_log off; underscores_in_headers on; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{upstream_port}; location / {{
    add_header X-Seen-User "$http_x_poolgate_user$http_oidc_claim_preferred_username" always;
    return 200 "ok\\n"; }} }} }}'''
        (d / "upstream.conf").write_text(common.replace("%s", "up") + body)
        return d / "upstream.conf"
    body = f'''http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{proxy_port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  upstream auth {{ server 127.0.0.1:{auth_endpoint_port}; keepalive 64; }}
{auth_request_server(auth_port, "auth/", "x_user")}
  server {{ listen 127.0.0.1:{auth_endpoint_port}; location / {{ add_header X-User alice; return 204; }} }} }}'''
    (d / "proxy.conf").write_text(common.replace("%s", "proxy") + body)
    return d / "proxy.conf"


def apache_conf(d, port, pg, upstream_port):
    mods = "/usr/lib/apache2/modules"
    (d / "apache.conf").write_text(f'''ServerRoot {d}
PidFile {d}/apache.pid
ErrorLog {d}/apache.err
LogLevel warn
Listen 127.0.0.1:{port}
ServerName apache.bench.localhost
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authn_core_module {mods}/mod_authn_core.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule authz_user_module {mods}/mod_authz_user.so
LoadModule auth_openidc_module {mods}/mod_auth_openidc.so
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
KeepAliveTimeout 30
MaxKeepAliveRequests 0
OIDCProviderMetadataURL http://127.0.0.1:{pg}/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret not-used
OIDCProviderTokenEndpointAuth none
OIDCPKCEMethod S256
OIDCScope "openid profile"
OIDCRedirectURI http://apache.bench.localhost:{port}/oidc_callback
OIDCCryptoPassphrase {secrets.token_hex(16)}
OIDCSessionInactivityTimeout 36000
OIDCSessionMaxDuration 36000
OIDCSSLValidateServer Off
ProxyPass /oidc_callback !
ProxyPass / http://127.0.0.1:{upstream_port}/ keepalive=On
<Location />
  AuthType openid-connect
  Require valid-user
</Location>
''')
    return d / "apache.conf"


# --- load --------------------------------------------------------------------------------

def oha_cmd(port, host, path, headers, seconds, rate=None, conns=64):
    cmd = ["taskset", "-c", LOAD_CPU, str(TOOLS / "oha"), "-z", f"{seconds}s", "-c", str(conns), "--no-tui",
           "--output-format", "json", "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"]
    for k, v in headers.items():
        cmd[-1:-1] = ["-H", f"{k}: {v}"]
    if rate:
        cmd[-1:-1] = ["-q", str(int(rate)), "--latency-correction"]
    return cmd


def oha(port, host, path, headers, seconds, rate=None, conns=64):
    out = subprocess.run(oha_cmd(port, host, path, headers, seconds, rate, conns), check=True, capture_output=True,
                         text=True).stdout
    return oha_result(out, host, path)


def oha_together(runs, seconds, rate):
    """Several loads at once on one proxy, `rate` in all, shared equally: a stall of the
    machine falls on all of them alike."""
    procs = [subprocess.Popen(oha_cmd(port, host, path, headers, seconds, rate / len(runs), 64 // len(runs)),
                              stdout=subprocess.PIPE, text=True) for port, host, path, headers in runs]
    return [oha_result(p.communicate()[0], host, path) for p, (_, host, path, _) in zip(procs, runs)]


def oha_result(out, host, path):
    r = json.loads(out)
    codes = r.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    # Requests still in flight when the run's time is up are cut off by oha, not failed.
    errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
    bad = sum(v for k, v in codes.items() if k != "200") + sum(errors.values())
    if bad:
        log(f"  errors at {host}{path}: codes {codes}, {errors}")
    pct = r.get("latencyPercentiles", {})
    return {"rps": r["summary"]["requestsPerSec"], "ok": ok, "errors": bad,
            "p50_ms": (pct.get("p50") or 0) * 1000, "p99_ms": (pct.get("p99") or 0) * 1000}


def wrk_rotating(port, host, path, cookies_file, seconds):
    script = Path(cookies_file).with_suffix(".lua")
    script.write_text(f'''local cookies = {{}}
for line in io.lines("{cookies_file}") do cookies[#cookies + 1] = line end
local i = 0
request = function()
  i = i % #cookies + 1
  return wrk.format("GET", "{path}", {{ ["Host"] = "{host}", ["Cookie"] = cookies[i] }})
end
''')
    return wrk(port, path, {"Host": host}, seconds, script)


def wrk(port, path, headers, seconds, script=None):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"rps": rps, "errors": bad, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None}


def check(port, host, path, headers, want_user=True):
    st, h, body = request(port, host, path, headers=headers)
    assert st == 200, f"{host}{path}: {st} {body[:200]}"
    seen = header(h, "x-seen-user")
    if want_user:
        assert seen and seen[0], f"{host}{path}: no identity header arrived upstream"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=4, help="length of each measured run")
    ap.add_argument("--rounds", type=int, default=5, help="times each target is measured, taking turns")
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    if os.cpu_count() < 2:
        raise SystemExit("needs two CPUs: the proxy on one, load and upstream on the other")
    if not args.no_install:
        ensure_tools()
    d = Path(tempfile.mkdtemp(prefix="poolgate-load-"))
    servers = []
    try:
        return measure(d, servers, args.seconds, args.rounds)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


def start_poolgate(d, servers, name, extra_pools=0, apache_port=1, up=None):
    pd = d / name
    pd.mkdir()
    port, admin = free_port(), free_port()
    cfg = poolgate_config(pd, port, admin, f"127.0.0.1:{up}", extra_pools, apache_port)
    bin_ = ROOT / "target/release/poolgate"
    run([str(bin_), "user", "add", "--config", str(cfg), "--pool", "bench", "alice", "--password-stdin", "--group", "staff"],
        input=b"bench-password\n", stdout=subprocess.DEVNULL)
    return pd, cfg, port, admin


def launch(servers, pd, cfg, name):
    # Access logs are off for every proxy measured (nginx: access_log off; Apache: none).
    env = {**os.environ, "RUST_LOG": "warn"}
    s = Server(name, [str(ROOT / "target/release/poolgate"), "serve", "--config", str(cfg)], PROXY_CPU, pd / "log", env=env)
    servers.append(s)
    return s


def median(xs):
    return statistics.median(xs) if xs else None


def summary(runs):
    """The median of each figure over a target's rounds (the rounds themselves are kept)."""
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and runs[0][k] is not None]
    out = {k: median([r[k] for r in runs if r.get(k) is not None]) for k in keys}
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds"] = runs
    return out


def ratio(runs, base):
    """The median over rounds of a round's req/s against the baseline's in the same round."""
    return median([r["rps"] / b["rps"] for r, b in zip(runs, base)])


def measure(d, servers, seconds, rounds):
    up = free_port()
    upstream = Server("upstream", ["/usr/sbin/nginx", "-c", str(nginx_conf(d, up, 0, 0, 0, True))], LOAD_CPU, d / "up.log")
    servers.append(upstream)
    ng, ng_auth, ng_auth_ep = free_port(), free_port(), free_port()
    nginx = Server("nginx", ["/usr/sbin/nginx", "-c", str(nginx_conf(d, up, ng, ng_auth, ng_auth_ep, False))], PROXY_CPU, d / "nginx.log")
    servers.append(nginx)
    ap_port = free_port()
    pd, cfg, pg, admin = start_poolgate(d, servers, "base", apache_port=ap_port, up=up)
    gate = launch(servers, pd, cfg, "poolgate")
    wait_ready(admin)
    apache = Server("apache", ["/usr/sbin/apache2", "-f", str(apache_conf(d, ap_port, pg, up)), "-DFOREGROUND"], PROXY_CPU, d / "apache.log",
                    env={**os.environ, "APACHE_RUN_DIR": str(d), "APACHE_LOCK_DIR": str(d), "APACHE_LOG_DIR": str(d)})
    servers.append(apache)
    time.sleep(1.5)

    portal_jar = {}
    app_cookie = app_session(pg, "app.bench.localhost", "alice", "bench-password", portal_jar)
    token = bearer_token(pg, "app", "app.bench.localhost", portal_jar)
    apache_cookie = apache_session(ap_port, pg, portal_jar, "apache.bench.localhost")

    targets = [
        ("1 direct to the upstream", up, "bench.localhost", "/", {}, None, False),
        ("2 poolgate, public path", pg, "app.bench.localhost", "/public", {}, gate, False),
        ("3 nginx proxy_pass", ng, "bench.localhost", "/", {}, nginx, False),
        ("4 nginx + auth_request", ng_auth, "bench.localhost", "/", {}, nginx, True),
        ("5 Apache + mod_auth_openidc", ap_port, "apache.bench.localhost", "/", {"Cookie": apache_cookie}, apache, True),
        ("6 poolgate, app session", pg, "app.bench.localhost", "/", {"Cookie": app_cookie}, gate, True),
        ("7 poolgate, bearer token", pg, "app.bench.localhost", "/", {"Authorization": f"Bearer {token}"}, gate, True),
    ]
    for name, port, host, path, headers, server, identity in targets:
        check(port, host, path, headers, identity)
    # The targets take turns, round after round, so a slow spell of this shared machine
    # falls on all of them; each figure is the median of its rounds. Apache goes first (its
    # backlog must drain before anything else runs) and poolgate's three go back to back,
    # so the ratios between them compare runs seconds apart.
    order = [targets[i] for i in (4, 0, 2, 3, 1, 5, 6)]
    peaks = {name: [] for name, *_ in targets}
    for rnd in range(rounds):
        for name, port, host, path, headers, server, identity in order:
            settle(servers)
            before = cpu_seconds(server.proc.pid) if server else 0
            slept = sleeps(upstream.proc.pid)
            peak = oha(port, host, path, headers, seconds)
            cpu = (cpu_seconds(server.proc.pid) - before) if server else 0
            peak["upstream_sleeps_per_req"] = (sleeps(upstream.proc.pid) - slept) / max(peak["ok"], 1)
            # poolgate's runs must be clean; another proxy's errors are reported, and its
            # row is marked as not counting.
            assert peak["errors"] == 0 or "poolgate" not in name, f"{name}: {peak['errors']} errors"
            peak["cpu_us_per_req"] = cpu / max(peak["ok"], 1) * 1e6 if server else None
            peaks[name].append(peak)
            log(f"round {rnd + 1} {name}: {peak['rps']:.0f} req/s, {peak['cpu_us_per_req'] or 0:.1f} µs CPU/req")
    rate = median([p["rps"] for p in peaks["2 poolgate, public path"]]) / 2
    halves = {name: [] for name, *_ in targets}
    for rnd in range(rounds):
        for name, port, host, path, headers, server, identity in order:
            settle(servers)
            at = oha(port, host, path, headers, seconds, rate=rate)
            assert at["errors"] == 0 or "poolgate" not in name, f"{name} at {rate:.0f}/s: {at['errors']} errors"
            halves[name].append(at)
            log(f"round {rnd + 1} {name} at {rate:.0f}/s: p50 {at['p50_ms']:.3f} ms, p99 {at['p99_ms']:.3f} ms")
    direct, public = peaks["1 direct to the upstream"], peaks["2 poolgate, public path"]
    results = {}
    for name, *_ in targets:
        results[name] = {"peak": summary(peaks[name]), "at_half_rate": summary(halves[name]),
                         "x_direct": ratio(peaks[name], direct), "x_public": ratio(peaks[name], public)}
    for name, base in [("4 nginx + auth_request", "6 poolgate, app session"), ("5 Apache + mod_auth_openidc", "6 poolgate, app session")]:
        results[base][f"x_{name[0]}"] = ratio(peaks[base], peaks[name])
    # The p99 of one target swings between runs far more than (6) and (2) differ: a stall of
    # this shared machine decides it. So (6) and (2) also run together, on one gateway at
    # half of (2)'s peak rate in all, and each round's difference of their p99 is the
    # comparison; its median over rounds is the figure.
    together = []
    for _ in range(rounds):
        settle(servers)
        two, six = oha_together([(pg, "app.bench.localhost", "/public", {}),
                                 (pg, "app.bench.localhost", "/", {"Cookie": app_cookie})], seconds, rate)
        assert two["errors"] == 0 and six["errors"] == 0, f"(2) and (6) together: {two['errors'] + six['errors']} errors"
        together.append({"2": two, "6": six, "p99_gap_ms": six["p99_ms"] - two["p99_ms"],
                         "p50_gap_ms": six["p50_ms"] - two["p50_ms"]})
        log(f"(2) and (6) together at {rate:.0f}/s: p99 {two['p99_ms']:.3f} and {six['p99_ms']:.3f} ms")
    results["6 poolgate, app session"]["against_2_together"] = {
        "p99_gap_ms": median([t["p99_gap_ms"] for t in together]),
        "p50_gap_ms": median([t["p50_gap_ms"] for t in together]), "rounds": together}

    # A key rotation and a reload in the middle of an open-loop run, each round beside a
    # run without them.
    def poke():
        time.sleep(seconds / 3)
        request(admin, "127.0.0.1", "/api/pools/bench/keys/rotate", "POST", {"Authorization": "Bearer bench-admin-token-0123456789"})
        time.sleep(seconds / 3)
        request(admin, "127.0.0.1", "/api/reload", "POST", {"Authorization": "Bearer bench-admin-token-0123456789"})
    quiet, during = [], []
    for _ in range(rounds):
        settle(servers)
        quiet.append(oha(pg, "app.bench.localhost", "/", {"Cookie": app_cookie}, seconds, rate=rate))
        settle(servers)
        t = threading.Thread(target=poke)
        t.start()
        during.append(oha(pg, "app.bench.localhost", "/", {"Cookie": app_cookie}, seconds, rate=rate))
        t.join()
    results["6 during key rotation + reload"] = {"at_half_rate": summary(during), "beside": summary(quiet)}

    # Login round trip with a portal session: app → portal (SSO) → callback → app.
    times = []
    for _ in range(40):
        start = time.perf_counter()
        app_session(pg, "app.bench.localhost", "alice", "bench-password", portal_jar)
        st, _, _ = request(pg, "app.bench.localhost", "/", headers={"Cookie": app_cookie})
        times.append((time.perf_counter() - start) * 1000)
    results["login round trip (SSO)"] = {"median_ms": statistics.median(times), "p90_ms": sorted(times)[int(len(times) * 0.9)]}

    # Scaling: the base gateway (one pool, one session) and a second one with 10,000 pools,
    # 1,000,000 revoked sessions and 100,000 session cookies rotating, both running, taking
    # turns round after round.
    settle(servers)
    base_rss = rss_mib(gate.proc.pid)
    one = d / "one-cookie.txt"
    one.write_text(app_cookie + "\n")
    pd2, cfg2, pg2, admin2 = start_poolgate(d, servers, "scaled", extra_pools=10_000, apache_port=ap_port, up=up)
    db = sqlite3.connect(pd2 / "data/poolgate.db")
    now = int(time.time())
    db.executemany("INSERT INTO sso_sessions (pool_id, id, user_id, auth_time, methods, source, created_at, expires_at, revoked_at) "
                   "VALUES ('bench', ?, 'x', ?, 'pwd', 'local', ?, ?, ?)",
                   ((secrets.token_hex(16), now, now, now + 36000, now) for _ in range(1_000_000)))
    db.commit()
    db.close()
    cookies = pd2 / "cookies.txt"
    with open(cookies, "w") as f:
        run([str(ROOT / "target/release/examples/mint_cookies"), str(cfg2), "bench", "app", "alice", "100000"], stdout=f)
    gate2 = launch(servers, pd2, cfg2, "poolgate-scaled")
    wait_ready(admin2, seconds=600)
    check(pg2, "app.bench.localhost", "/", {"Cookie": open(cookies).readline().strip()})
    # Start-up (10,000 keys made and loaded, 1,000,000 revocations read) leaves garbage the
    # allocator returns within seconds; RSS is read once the process is idle.
    settle(servers)
    time.sleep(3)
    idle_rss = rss_mib(gate2.proc.pid)
    scale = {k: [] for k in ["public_1_pool", "public_10k_pools", "session_1", "session_100k_rotating_1m_revoked"]}
    for _ in range(rounds):
        scale["public_1_pool"].append(wrk(pg, "/public", {"Host": "app.bench.localhost"}, seconds))
        scale["public_10k_pools"].append(wrk(pg2, "/public", {"Host": "app.bench.localhost"}, seconds))
        scale["session_1"].append(wrk_rotating(pg, "app.bench.localhost", "/", one, seconds))
        scale["session_100k_rotating_1m_revoked"].append(wrk_rotating(pg2, "app.bench.localhost", "/", cookies, seconds))
    for k, runs in scale.items():
        assert all(r["errors"] == 0 for r in runs), f"{k}: errors {[r['errors'] for r in runs]}"
    settle(servers)
    after_rss = rss_mib(gate2.proc.pid)

    # Per active user: 20,000 users with a session each, all in use at once. A session costs
    # the gateway nothing, but each user it has seen lately costs a profile and, per app,
    # the prepared identity headers. The first pass fetches and signs; the second is warm.
    active = 20_000
    people = d / "people.jsonl"
    people.write_text("".join(json.dumps({"username": f"person{i}"}) + "\n" for i in range(active)))
    run([str(ROOT / "target/release/poolgate"), "user", "import", "--config", str(cfg), "--pool", "bench", str(people)],
        stdout=subprocess.DEVNULL)
    many = d / "many-users.txt"
    with open(many, "w") as f:
        run([str(ROOT / "target/release/examples/mint_cookies"), str(cfg), "bench", "app", "--every-user", str(active + 1)], stdout=f)
    settle(servers)
    rss_before_users = rss_mib(gate.proc.pid)
    cold = wrk_rotating(pg, "app.bench.localhost", "/", many, seconds)
    warm_one, warm_many = [], []
    for _ in range(rounds):
        warm_one.append(wrk_rotating(pg, "app.bench.localhost", "/", one, seconds))
        warm_many.append(wrk_rotating(pg, "app.bench.localhost", "/", many, seconds))
    rss_after_users = rss_mib(gate.proc.pid)
    for k, runs in [("one user", warm_one), ("many users", warm_many + [cold])]:
        assert all(r["errors"] == 0 for r in runs), f"{k}: errors {[r['errors'] for r in runs]}"
    # What a reload and a key rotation cost with 10,000 pools (wall time of the API call).
    auth = {"Authorization": "Bearer bench-admin-token-0123456789"}
    timed = {}
    for what, path in [("reload", "/api/reload"), ("key rotation", "/api/pools/bench/keys/rotate")]:
        ms = []
        for _ in range(3):
            start = time.perf_counter()
            st, _, body = request(admin2, "127.0.0.1", path, "POST", auth)
            assert st in (200, 201), f"{what}: {st} {body[:200]}"
            ms.append((time.perf_counter() - start) * 1000)
        timed[what] = median(ms)
    results["scaling"] = {
        "rss_mib_1_pool": base_rss, "rss_mib_10k_pools_1m_revoked": idle_rss,
        "rss_mib_after_100k_sessions": after_rss,
        **{k: summary(v) for k, v in scale.items()},
        "x_10k_pools": ratio(scale["public_10k_pools"], scale["public_1_pool"]),
        "x_1m_sessions": ratio(scale["session_100k_rotating_1m_revoked"], scale["session_1"]),
        "reload_ms_10k_pools": timed["reload"], "key_rotation_ms_10k_pools": timed["key rotation"],
        "active_users": active, "first_pass_20k_users": cold,
        "session_1_user": summary(warm_one), "session_20k_users": summary(warm_many),
        "x_20k_users": ratio(warm_many, warm_one),
        "bytes_per_active_user": max(0.0, rss_after_users - rss_before_users) * 1048576 / active,
    }
    return report(results, rate, rounds)


def report(results, rate, rounds):
    out = ROOT / "benches/load/results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    machine = f"{os.cpu_count()} CPUs, {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}"
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    build = git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if git("status", "--porcelain", "--", "src") else "")
    (out / f"{stamp}.json").write_text(json.dumps({"machine": machine, "build": build, "rate": rate, "rounds": rounds,
                                                   "results": results}, indent=2))
    print(f"\nbuild {build}; machine: {machine}; proxies pinned to CPU 0, load + upstream to CPU 1; median of {rounds} rounds\n")
    print("| target | req/s | ×(1) | ×(2) | CPU µs/req | upstream sleeps/req | p50 ms @ {:.0f}/s | p99 ms @ {:.0f}/s |".format(rate, rate))
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if "peak" not in r:
            continue
        p, h = r["peak"], r["at_half_rate"]
        cpu = f"{p['cpu_us_per_req']:.1f}" if p.get("cpu_us_per_req") else "–"
        if p["errors"] or h["errors"]:
            name += f" ({p['errors'] + h['errors']} errors: does not count)"
        print(f"| {name} | {p['rps']:.0f} | {r['x_direct']:.2f} | {r['x_public']:.2f} | {cpu} | {p['upstream_sleeps_per_req']:.2f} "
              f"| {h['p50_ms']:.3f} | {h['p99_ms']:.3f} |")
    six = results["6 poolgate, app session"]
    print(f"\n(6) against (4): {six['x_4']:.2f}×; against (5): {six['x_5']:.2f}×")
    gap = six["against_2_together"]
    print(f"(6) and (2) together on one gateway at {rate:.0f}/s in all: p99 of (6) minus p99 of (2) {gap['p99_gap_ms']:+.3f} ms "
          f"(rounds: {', '.join(format(t['p99_gap_ms'], '+.2f') for t in gap['rounds'])}), p50 {gap['p50_gap_ms']:+.3f} ms")
    d = results["6 during key rotation + reload"]
    print(f"key rotation + reload mid-run: {d['at_half_rate']['errors']} errors, p99 {d['at_half_rate']['p99_ms']:.3f} ms "
          f"(beside it without: {d['beside']['p99_ms']:.3f} ms)")
    lr = results["login round trip (SSO)"]
    print(f"login round trip with SSO: median {lr['median_ms']:.2f} ms, p90 {lr['p90_ms']:.2f} ms")
    s = results["scaling"]
    print(f"10,000 pools, public path: {s['x_10k_pools']:.3f} × one pool")
    print(f"1,000,000 revoked + 100,000 rotating sessions: {s['x_1m_sessions']:.3f} × one session")
    print(f"RSS: {s['rss_mib_1_pool']:.0f} MiB (1 pool) → {s['rss_mib_10k_pools_1m_revoked']:.0f} MiB (10,000 pools, 1,000,000 revocations) "
          f"→ {s['rss_mib_after_100k_sessions']:.0f} MiB after 100,000 live sessions "
          f"({max(0, s['rss_mib_after_100k_sessions'] - s['rss_mib_10k_pools_1m_revoked']) * 1048576 / 100_000:.0f} bytes per live session)")
    print(f"20,000 active users, one session each: {s['x_20k_users']:.3f} × one user once warm "
          f"(first pass {s['first_pass_20k_users']['rps']:.0f} req/s), {s['bytes_per_active_user']:.0f} bytes per active user")
    print(f"with 10,000 pools: a reload takes {s['reload_ms_10k_pools']:.0f} ms, a key rotation {s['key_rotation_ms_10k_pools']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
