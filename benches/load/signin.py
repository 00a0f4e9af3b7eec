#!/usr/bin/env python3
"""poolgate's sign-in load harness: loopback only, bounded in count and time.

Per store (SQLite file and/or a throwaway PostgreSQL), one gateway with one pool and one
app (a `poolgate whoami` upstream), 64 users made through the admin API, then:

  concurrent sign-ins   64 browsers at once (threads released by a barrier, one cookie jar
                        each, each from its own source address 127.0.1.1 … 127.0.1.64, as
                        64 different people), every one through the whole hosted flow: app → /.poolgate/login
                        → /oidc/authorize → login page → POST /login → /.poolgate/callback →
                        app (200 from whoami with X-Poolgate-User). --rounds rounds, fresh
                        jars each round. Failures are counted with their step and status; a
                        503 (password checks busy) is a failure here, never retried.
  password flood        (SQLite only) 200 clients, each from its own source address
                        127.0.0.2 … 127.0.0.201, fetch the login page and POST a wrong
                        password, all at once; ~100 ms in, one real user signs in through the
                        full flow from 127.0.0.1 (on 503 it waits Retry-After and retries).
                        The gateway's VmRSS / VmHWM are sampled every 50 ms; the 503s are
                        counted (and those without Retry-After), and the peak RSS over the
                        baseline is set beside the hashing bound, cores × 19 MiB (one argon2id
                        check at a time per core).

Every form POST carries `Origin: http://<host>:<port>` of the page the form came from (the
portal refuses cross-origin posts).

Results: a table per store on stdout and JSON under benches/load/results/signin-*.json.

    benches/load/signin                               # target/release/poolgate, both stores
    benches/load/signin --bin target/debug/poolgate --store sqlite --rounds 1

Exit status: 0 when every sign-in of every store that ran succeeded (a PostgreSQL that
cannot be started is reported and skipped, as long as SQLite ran); 1 when a sign-in
failed or no store ran; 2 when the binary is missing.
"""

import argparse
import html
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POOL, APP = "load", "app"
PORTAL_HOST, APP_HOST = "login.load.localhost", "app.load.localhost"
USERS = 64
FLOOD = 200
ADMIN_TOKEN = "signin-load-admin-token-" + secrets.token_hex(8)
REQUEST_TIMEOUT = 60.0
SCENARIO_BOUND = 300.0
ARGON2_MIB = 19  # memory of one argon2id check (m=19456 KiB)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def origin_of(url):
    """`scheme://host:port` of a URL: what a browser sends as `Origin` from a page there."""
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def loopback(host):
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


# --- processes ---------------------------------------------------------------------------

class Procs:
    """Every process this harness starts, each in its own session, killed by group."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def start(self, cmd, log_path, env=None):
        f = open(log_path, "w")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env or os.environ, start_new_session=True)
        f.close()
        with self.lock:
            self.procs.append(p)
        return p

    def stop(self, p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with self.lock:
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


PROCS = Procs()


def proc_status(pid):
    """VmRSS and VmHWM of one process, in KiB (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
    return (int(rss.group(1)) if rss else None), (int(hwm.group(1)) if hwm else None)


class MemSampler(threading.Thread):
    def __init__(self, pid, interval=0.05, bound=SCENARIO_BOUND + 60):
        super().__init__(daemon=True)
        self.pid, self.interval, self.bound = pid, interval, bound
        self.samples = []  # (seconds since start, VmRSS KiB)
        self.stopped = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        deadline = self.t0 + self.bound
        while not self.stopped.is_set() and time.monotonic() < deadline:
            rss, _ = proc_status(self.pid)
            if rss is not None:
                self.samples.append((time.monotonic() - self.t0, rss))
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)


# --- http ----------------------------------------------------------------------------------

class Fail(Exception):
    def __init__(self, step, status, detail=""):
        super().__init__(f"{step}: {status} {detail}")
        self.step, self.status, self.detail = step, status, detail


class Browser:
    """A browser with its own cookie jar (host-only cookies, kept per host). Every request
    goes to 127.0.0.1:port with the URL's host in `Host`, optionally from a given source
    address on 127.0.0.0/8."""

    timeout = REQUEST_TIMEOUT  # per request; --request-timeout sets it

    def __init__(self, source=None, deadline=None):
        self.jar = {}  # host -> {name: value}
        self.source = source
        self.deadline = deadline

    def cookies(self, host):
        return self.jar.setdefault(host, {})

    def _store(self, host, headers):
        jar = self.cookies(host)
        for k, v in headers:
            if k.lower() != "set-cookie":
                continue
            first, *attrs = v.split(";")
            if "=" not in first:
                continue
            name, value = (x.strip() for x in first.split("=", 1))
            gone = any(a.strip().lower().replace(" ", "") in ("max-age=0",) or
                       re.match(r"\s*max-age\s*=\s*-", a, re.I) for a in attrs)
            if gone or value == "":
                jar.pop(name, None)
            else:
                jar[name] = value

    def request(self, url, method="GET", headers=None, form=None, step="request"):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname or not loopback(u.hostname) or not u.port:
            raise Fail(step, "bad-url", url)
        timeout = self.timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise Fail(step, "deadline", url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        h = {"Host": u.netloc, "User-Agent": "poolgate-signin-load", **(headers or {})}
        jar = self.cookies(u.hostname)
        if jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
            if not any(k.lower() == "origin" for k in h):
                raise Fail(step, "harness", "a form POST without Origin")
        src = (self.source, 0) if self.source else None
        c = http.client.HTTPConnection("127.0.0.1", u.port, timeout=timeout, source_address=src)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hs = r.getheaders()
            status = r.status
        except (TimeoutError, socket.timeout) as e:
            raise Fail(step, "timeout", f"no answer in {timeout:.0f} s ({e})") from None
        except (OSError, http.client.HTTPException) as e:
            raise Fail(step, "io", f"{type(e).__name__}: {e}") from None
        finally:
            c.close()
        self._store(u.hostname, hs)
        return Response(url, status, hs, data)


class Response:
    def __init__(self, url, status, headers, body):
        self.url, self.status, self.headers, self.body = url, status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def location(self):
        loc = self.header("location")
        return urllib.parse.urljoin(self.url, loc) if loc else None

    def text(self):
        return self.body.decode("utf-8", "replace")

    def snippet(self):
        t = re.sub(r"<[^>]+>", " ", self.text())
        return re.sub(r"\s+", " ", t).strip()[:160]


def _attrs(tag):
    out = {}
    for m in re.finditer(r'([\w-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s>"\']+))', tag):
        v = next((g for g in m.groups()[1:] if g is not None), "")
        out[m.group(1).lower()] = html.unescape(v)
    return out


def form_of(page):
    """The first form's action and its hidden inputs."""
    form = re.search(r"<form\b[^>]*>", page, re.I)
    action = _attrs(form.group(0)).get("action", "") if form else ""
    hidden = {}
    for tag in re.findall(r"<input\b[^>]*>", page, re.I):
        a = _attrs(tag)
        if a.get("type", "").lower() == "hidden" and "name" in a:
            hidden[a["name"]] = a.get("value", "")
    return action, hidden


def expect_redirect(r, step, to_host=None, to_path=None):
    if r.status not in (302, 303, 307):
        raise Fail(step, r.status, r.snippet())
    loc = r.location()
    if not loc:
        raise Fail(step, r.status, "no Location")
    u = urllib.parse.urlsplit(loc)
    if to_host and u.hostname != to_host:
        raise Fail(step, r.status, f"redirect to {loc[:120]}")
    if to_path and u.path != to_path:
        raise Fail(step, r.status, f"redirect to {loc[:120]}")
    return loc


# --- the sign-in flow -----------------------------------------------------------------------

class Flow:
    """One whole sign-in, as a browser: returns the user id the app received."""

    def __init__(self, port, retry_503=False, max_retries=50):
        self.port = port
        self.retry_503 = retry_503
        self.max_retries = max_retries
        self.retries = 0

    def send(self, b, url, step, method="GET", headers=None, form=None):
        while True:
            r = b.request(url, method, headers, form, step)
            if r.status != 503 or not self.retry_503:
                return r
            if self.retries >= self.max_retries:
                raise Fail(step, 503, f"still 503 after {self.retries} retries")
            self.retries += 1
            try:
                wait = float(r.header("retry-after") or 1)
            except ValueError:
                wait = 1.0
            wait = max(0.05, min(wait, 30.0))
            if b.deadline is not None and time.monotonic() + wait >= b.deadline:
                raise Fail(step, 503, "Retry-After beyond the scenario's deadline")
            time.sleep(wait)

    def run(self, b, username, password):
        app = f"http://{APP_HOST}:{self.port}"
        html_accept = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
        r = self.send(b, f"{app}/", "1 app /", headers=html_accept)
        loc = expect_redirect(r, "1 app /", APP_HOST, "/.poolgate/login")
        r = self.send(b, loc, "2 /.poolgate/login", headers=html_accept)
        loc = expect_redirect(r, "2 /.poolgate/login", PORTAL_HOST, "/oidc/authorize")
        if "poolgate-login" not in b.cookies(APP_HOST):
            raise Fail("2 /.poolgate/login", r.status, "no poolgate-login cookie")
        r = self.send(b, loc, "3 /oidc/authorize", headers=html_accept)
        if r.status != 200:
            raise Fail("3 /oidc/authorize", r.status, r.snippet())
        action, hidden = form_of(r.text())
        if not hidden.get("csrf") or not hidden.get("request"):
            raise Fail("3 /oidc/authorize", r.status, "no csrf/request hidden inputs")
        if "poolgate-csrf" not in b.cookies(PORTAL_HOST):
            raise Fail("3 /oidc/authorize", r.status, "no poolgate-csrf cookie")
        post = urllib.parse.urljoin(r.url, action or "/login")
        form = {"csrf": hidden["csrf"], "request": hidden["request"], "username": username, "password": password}
        # Origin: the login page's own origin (the portal's), as a browser sends it.
        r = self.send(b, post, "4 POST /login", "POST", {**html_accept, "Origin": origin_of(r.url), "Referer": r.url}, form)
        loc = expect_redirect(r, "4 POST /login", APP_HOST, "/.poolgate/callback")
        if "code" not in urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query):
            raise Fail("4 POST /login", r.status, "callback without a code")
        r = self.send(b, loc, "5 /.poolgate/callback", headers=html_accept)
        loc = expect_redirect(r, "5 /.poolgate/callback", APP_HOST)
        if "poolgate" not in b.cookies(APP_HOST):
            raise Fail("5 /.poolgate/callback", r.status, "no app cookie `poolgate`")
        if urllib.parse.urlsplit(loc).path != "/":
            raise Fail("5 /.poolgate/callback", r.status, f"returned to {loc[:120]}")
        # The app answers JSON (whoami answers a page to text/html).
        r = self.send(b, loc, "6 app / signed in", headers={"Accept": "application/json"})
        if r.status != 200:
            raise Fail("6 app / signed in", r.status, r.snippet())
        try:
            echo = json.loads(r.body)
            user = echo["headers"]["x-poolgate-user"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise Fail("6 app / signed in", r.status, "no x-poolgate-user reached the upstream") from None
        if not user:
            raise Fail("6 app / signed in", r.status, "empty x-poolgate-user")
        return user


def password_of(i):
    return f"load-password-{i:03d}-Kx7q"


def username_of(i):
    return f"user{i:03d}"


# --- setup ------------------------------------------------------------------------------------

def write_config(d, http_port, admin_port, upstream_port, store_url):
    # address_lockout_attempts: the most the config accepts (1…1000), so the per-address
    # throttle never interferes (no address here fails more than once).
    (d / "admin.token").write_text(ADMIN_TOKEN + "\n")
    cfg = d / "poolgate.toml"
    cfg.write_text(f'''version = 1

[listen]
http = "127.0.0.1:{http_port}"

[admin]
listen = "127.0.0.1:{admin_port}"
token_file = "admin.token"

[store]
url = "{store_url}"

[master_key]
file = "master.key"

[pools.{POOL}]
name = "Load"
portal = "{PORTAL_HOST}"
plan = "enterprise"
address_lockout_attempts = 1000

[pools.{POOL}.apps.{APP}]
hosts = ["{APP_HOST}"]
upstreams = ["127.0.0.1:{upstream_port}"]
''')
    return cfg


def plain(port, host, path, method="GET", headers=None, body=None, timeout=REQUEST_TIMEOUT):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def wait_ready(port, path, proc, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before {path} was ready")
        try:
            if plain(port, "127.0.0.1", path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready after {seconds} s")


def wait_port(port, proc, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"whoami exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"whoami on {port} did not listen")


def create_users(admin_port, n, deadline, workers=2):
    """n users through the admin API, two calls at a time (each hashes a password); a call
    answered 500/503 is retried up to three times (setup is not what is measured).
    Returns how many calls were retried."""
    errors, lock, nxt, retried = [], threading.Lock(), [0], [0]

    def worker():
        while time.monotonic() < deadline:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            body = json.dumps({"username": username_of(i), "email": f"{username_of(i)}@load.localhost",
                               "password": password_of(i), "groups": []})
            for attempt in range(4):
                try:
                    st, text = plain(admin_port, "127.0.0.1", f"/api/pools/{POOL}/users", "POST",
                                     {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}, body,
                                     timeout=max(1.0, min(60.0, deadline - time.monotonic())))
                except OSError as e:
                    st, text = "io", str(e)
                if st not in (500, 503) or time.monotonic() >= deadline:
                    break
                with lock:
                    retried[0] += 1
                time.sleep(0.2 * (attempt + 1))
            if st not in (200, 201):
                with lock:
                    errors.append(f"{username_of(i)}: {st} {text[:200]}")
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()) + 1)
    if nxt[0] < n:
        errors.append(f"only {min(nxt[0], n)} of {n} users attempted before the deadline")
    if errors:
        raise RuntimeError("creating users failed: " + "; ".join(errors[:5]))
    return retried[0]


class Gateway:
    def __init__(self, binary, d, store_url):
        self.d = d
        self.http, self.admin, self.up = free_port(), free_port(), free_port()
        self.cfg = write_config(d, self.http, self.admin, self.up, store_url)
        self.whoami = PROCS.start([str(binary), "whoami", "--listen", f"127.0.0.1:{self.up}"], d / "whoami.log")
        wait_port(self.up, self.whoami)
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = PROCS.start([str(binary), "serve", "--config", str(self.cfg)], d / "poolgate.log", env)
        try:
            wait_ready(self.admin, "/readyz", self.proc)
        except RuntimeError as e:
            raise RuntimeError(f"poolgate: {e}; log: {self.log_tail()}") from None

    def log_tail(self, n=5):
        try:
            return " | ".join((self.d / "poolgate.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def error_lines(self, limit=20):
        """Distinct error messages the gateway logged (JSON lines or text)."""
        seen = {}
        try:
            lines = (self.d / "poolgate.log").read_text(errors="replace").splitlines()
        except OSError:
            return {}
        for line in lines:
            if "ERROR" not in line and '"level":"error"' not in line.lower().replace(" ", ""):
                continue
            key = re.sub(r'"timestamp":"[^"]*",?|\d{4}-\d\d-\d\dT[\d:.]+Z?\s*', "", line)
            key = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:*", key)[:240]
            seen[key] = seen.get(key, 0) + 1
        return dict(sorted(seen.items(), key=lambda kv: -kv[1])[:limit])

    def stop(self):
        PROCS.stop(self.proc)
        PROCS.stop(self.whoami)


# --- scenarios ---------------------------------------------------------------------------------

def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def concurrent_signins(gw, rounds, clients=USERS):
    all_ms, failures, total, walls = [], [], 0, []
    t_start = time.monotonic()
    deadline = t_start + SCENARIO_BOUND
    for rnd in range(rounds):
        if time.monotonic() >= deadline:
            failures.append({"round": rnd + 1, "user": None, "step": "scenario", "status": "deadline",
                             "detail": f"round {rnd + 1} not started: the {SCENARIO_BOUND:.0f} s bound was reached"})
            break
        barrier = threading.Barrier(clients + 1, timeout=60)
        results = [None] * clients

        def client(i):
            # One source address per client (127.0.1.1 … 127.0.1.64): 64 different people,
            # so the gate's per-address share is not what is measured.
            b = Browser(source=f"127.0.1.{1 + i}", deadline=deadline)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                results[i] = ("fail", Fail("barrier", "broken"), 0.0)
                return
            t0 = time.perf_counter()
            try:
                uid = Flow(gw.http).run(b, username_of(i), password_of(i))
                results[i] = ("ok", uid, (time.perf_counter() - t0) * 1000)
            except Fail as f:
                results[i] = ("fail", f, (time.perf_counter() - t0) * 1000)
            except Exception as e:  # noqa: BLE001 - a harness bug counts as that client's failure
                results[i] = ("fail", Fail("harness", type(e).__name__, str(e)), (time.perf_counter() - t0) * 1000)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        r0 = time.monotonic()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 1)
        walls.append(time.monotonic() - r0)
        ok = 0
        for i, res in enumerate(results):
            total += 1
            if res is None:
                failures.append({"round": rnd + 1, "user": username_of(i), "step": "unfinished", "status": "deadline", "detail": ""})
            elif res[0] == "ok":
                ok += 1
                all_ms.append(res[2])
            else:
                f = res[1]
                failures.append({"round": rnd + 1, "user": username_of(i), "source": f"127.0.1.{1 + i}",
                                 "step": f.step, "status": f.status, "detail": f.detail[:200], "ms": round(res[2], 1)})
        log(f"  round {rnd + 1}: {ok}/{clients} signed in in {walls[-1]:.1f} s")
    by = {}
    for f in failures:
        key = f"{f['step']} → {f['status']}" + (f": {f['detail'][:90]}" if f["detail"] else "")
        by[key] = by.get(key, 0) + 1
    return {
        "clients": clients, "sources": f"127.0.1.1-127.0.1.{clients}", "rounds": rounds, "sign_ins": total, "ok": len(all_ms), "failures": len(failures),
        "failures_by_step": by, "failure_list": failures[:200],
        "latency_ms": {"p50": pct(all_ms, 50), "p99": pct(all_ms, 99), "max": max(all_ms) if all_ms else None,
                       "mean": statistics.fmean(all_ms) if all_ms else None},
        "round_wall_s": walls, "wall_s": time.monotonic() - t_start,
    }


def password_flood(gw, clients=FLOOD):
    pid = gw.proc.pid
    time.sleep(1.0)
    base_rss, base_hwm = proc_status(pid)
    sampler = MemSampler(pid)
    sampler.start()
    t_start = time.monotonic()
    deadline = t_start + SCENARIO_BOUND
    portal = f"http://{PORTAL_HOST}:{gw.http}"
    barrier = threading.Barrier(clients + 1, timeout=60)
    results = [None] * clients
    ends = [None] * clients

    def bad(i):
        # Users 1…63 take the wrong passwords (at most 4 each, under the account lockout);
        # user 0 is the real sign-in.
        src = f"127.0.0.{2 + i}"
        b = Browser(source=src, deadline=deadline)
        user = username_of(1 + i % (USERS - 1))
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            results[i] = ("barrier", "broken")
            return
        try:
            r = b.request(f"{portal}/", headers={"Accept": "text/html"}, step="GET /")
            if r.status != 200:
                results[i] = ("GET /", r.status)
                return
            action, hidden = form_of(r.text())
            if not hidden.get("csrf"):
                results[i] = ("GET /", "no csrf")
                return
            form = {"csrf": hidden["csrf"], "request": hidden.get("request", ""), "username": user,
                    "password": "wrong-" + secrets.token_hex(6)}
            r = b.request(urllib.parse.urljoin(r.url, action or "/login"), "POST",
                          {"Accept": "text/html", "Origin": origin_of(r.url), "Referer": r.url}, form,
                          step="POST /login")
            results[i] = ("POST /login", r.status, r.header("retry-after"))
        except Fail as f:
            results[i] = (f.step, f.status)
        finally:
            ends[i] = time.monotonic()

    threads = [threading.Thread(target=bad, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    released = time.monotonic()
    time.sleep(0.1)
    real = {"user": username_of(0), "started_after_release_ms": (time.monotonic() - released) * 1000}
    flow = Flow(gw.http, retry_503=True)
    t0 = time.perf_counter()
    try:
        real["uid"] = flow.run(Browser(source="127.0.0.1", deadline=deadline), username_of(0), password_of(0))
        real["ok"] = True
    except Fail as f:
        real.update(ok=False, step=f.step, status=f.status, detail=f.detail[:200])
    except Exception as e:  # noqa: BLE001
        real.update(ok=False, step="harness", status=type(e).__name__, detail=str(e)[:200])
    real["ms"] = (time.perf_counter() - t0) * 1000
    real["retries"] = flow.retries
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 1)
    done = [e for e in ends if e is not None]
    flood_wall = (max(done) - released) if done else None
    time.sleep(0.5)
    sampler.stop()
    _, final_hwm = proc_status(pid)
    final_rss, _ = proc_status(pid)
    statuses = {}
    for res in results:
        key = "unfinished" if res is None else (str(res[1]) if res[0] == "POST /login" else f"{res[0]}: {res[1]}")
        statuses[key] = statuses.get(key, 0) + 1
    busy = [res for res in results if res is not None and res[0] == "POST /login" and res[1] == 503]
    no_retry_after = sum(1 for res in busy if not (res[2] or "").strip())
    peak = max((kb for _, kb in sampler.samples), default=None)
    cores = os.cpu_count() or 1
    return {
        "clients": clients, "sources": f"127.0.0.2-127.0.0.{1 + clients}",
        "baseline_rss_mib": kib_mib(base_rss), "baseline_hwm_mib": kib_mib(base_hwm),
        "peak_rss_mib": kib_mib(peak), "final_hwm_mib": kib_mib(final_hwm), "final_rss_mib": kib_mib(final_rss),
        "samples": len(sampler.samples),
        "rss_timeline_mib": [(round(t, 2), round(kb / 1024, 1)) for t, kb in sampler.samples[:: max(1, len(sampler.samples) // 100)]],
        "peak_over_baseline_mib": kib_mib(peak - base_rss) if peak is not None and base_rss is not None else None,
        "cores": cores, "hashing_bound_mib": cores * ARGON2_MIB,
        "bad_login_statuses": statuses, "busy_503": len(busy), "busy_503_without_retry_after": no_retry_after,
        "busy_503_retry_after_values": sorted({(res[2] or "").strip() for res in busy}),
        "flood_wall_s": flood_wall, "real_login": real,
        "wall_s": time.monotonic() - t_start,
    }


def kib_mib(kb):
    return None if kb is None else kb / 1024


# --- postgres --------------------------------------------------------------------------------

class Postgres:
    """A PostgreSQL for one run: a throwaway server from .ci/postgres.sh, or --postgres-url;
    a fresh database on it either way."""

    def __init__(self, url=None):
        self.pgdata = None
        self.admin_url = url
        self.db = None

    @staticmethod
    def bin_dir():
        dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", str(p))])
        return dirs[-1] if dirs else None

    def psql(self):
        b = self.bin_dir()
        if b and (b / "psql").exists():
            return str(b / "psql")
        return shutil.which("psql")

    def start(self):
        """Returns the URL of a fresh database; raises RuntimeError saying why not."""
        if self.admin_url is None:
            if self.bin_dir() is None:
                raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin is missing); "
                                   "this harness does not install it: run `.ci/postgres.sh start` once "
                                   "(it installs Debian's postgresql) or pass --postgres-url")
            if os.geteuid() != 0:
                raise RuntimeError(".ci/postgres.sh needs root (initdb runs as the postgres user)")
            out = subprocess.run(["bash", "-c", 'eval "$(.ci/postgres.sh start)" && '
                                  'echo "PGDATA_POOLGATE=$PGDATA_POOLGATE" && echo "POOLGATE_TEST_POSTGRES=$POOLGATE_TEST_POSTGRES"'],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120)
            env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            self.pgdata = env.get("PGDATA_POOLGATE") or None
            if out.returncode != 0 or not env.get("POOLGATE_TEST_POSTGRES"):
                raise RuntimeError(f".ci/postgres.sh start failed ({out.returncode}): {out.stderr.strip()[-400:]}")
            self.admin_url = env["POOLGATE_TEST_POSTGRES"]
        u = urllib.parse.urlsplit(self.admin_url)
        if u.scheme not in ("postgres", "postgresql") or not u.hostname or not loopback(u.hostname):
            raise RuntimeError(f"--postgres-url must be a postgres:// URL on loopback (127.0.0.0/8), not {self.admin_url!r}")
        psql = self.psql()
        if not psql:
            raise RuntimeError("psql is missing: cannot make a fresh database")
        self.db = f"poolgate_signin_{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(3)}"
        r = subprocess.run([psql, self.admin_url, "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{self.db}"'],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.db = None
            raise RuntimeError(f"CREATE DATABASE failed: {r.stderr.strip()[-400:]}")
        return urllib.parse.urlunsplit(u._replace(path="/" + self.db))

    def stop(self):
        if self.pgdata:
            subprocess.run([str(ROOT / ".ci/postgres.sh"), "stop", self.pgdata], cwd=ROOT, capture_output=True, timeout=120)
            self.pgdata = None
        elif self.db and self.admin_url:
            psql = self.psql()
            if psql:
                subprocess.run([psql, self.admin_url, "-qc", f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'],
                               capture_output=True, timeout=60)
        self.db = None


# --- run ------------------------------------------------------------------------------------

def run_store(binary, store, d, rounds, pg_url=None):
    d.mkdir()
    url = f"sqlite:{d / 'poolgate.db'}" if store == "sqlite" else pg_url
    log(f"[{store}] starting poolgate ({binary})")
    gw = Gateway(binary, d, url)
    try:
        t0 = time.monotonic()
        retried = create_users(gw.admin, USERS, time.monotonic() + SCENARIO_BOUND)
        out = {"store": store, "store_url": url, "users": USERS, "users_created_s": time.monotonic() - t0,
               "user_creation_retries": retried}
        log(f"[{store}] {USERS} users made in {out['users_created_s']:.1f} s ({retried} admin calls retried after 5xx); "
            f"concurrent sign-ins, {rounds} round(s)")
        out["concurrent_signins"] = concurrent_signins(gw, rounds)
        if store == "sqlite":
            log(f"[{store}] password flood: {FLOOD} clients from 127.0.0.2…127.0.0.{1 + FLOOD}")
            out["password_flood"] = password_flood(gw)
        out["gateway_errors_logged"] = gw.error_lines()
        return out
    finally:
        gw.stop()


def fmt(x, spec=".0f", unit=""):
    return "–" if x is None else f"{format(x, spec)}{unit}"


def print_summary(store, r):
    print(f"\n## {store}\n")
    print("| figure | value |")
    print("|---|---|")
    c = r["concurrent_signins"]
    lat = c["latency_ms"]
    print(f"| concurrent sign-ins | {c['sign_ins']} ({c['clients']} clients from {c['sources']} × {c['rounds']} rounds) |")
    print(f"| failures | **{c['failures']}** |")
    print(f"| sign-in latency p50 / p99 / max | {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} ms |")
    print(f"| wall time (rounds) | {c['wall_s']:.1f} s ({', '.join(f'{w:.1f}' for w in c['round_wall_s'])}) |")
    for k, n in c["failures_by_step"].items():
        print(f"| failed at {k.replace('|', '/')} | {n} |")
    f = r.get("password_flood")
    if f:
        real = f["real_login"]
        outcome = "ok" if real.get("ok") else f"FAILED at {real.get('step')} → {real.get('status')} {real.get('detail', '')[:80]}"
        print(f"| flood: bad logins ({f['clients']}, one per source address) | "
              f"{', '.join(f'{k}: {v}' for k, v in sorted(f['bad_login_statuses'].items()))} |")
        print(f"| flood: 503 (busy) / of those without Retry-After | {f['busy_503']} / "
              f"**{f['busy_503_without_retry_after']}** (Retry-After: {', '.join(f['busy_503_retry_after_values']) or '–'}) |")
        print(f"| flood: wall time | {fmt(f['flood_wall_s'], '.1f', ' s')} |")
        print(f"| flood: RSS baseline → peak sampled (final VmHWM) | {fmt(f['baseline_rss_mib'], '.1f')} → "
              f"{fmt(f['peak_rss_mib'], '.1f')} MiB ({fmt(f['final_hwm_mib'], '.1f')} MiB) |")
        print(f"| flood: peak RSS − baseline vs hashing bound ({f['cores']} cores × {ARGON2_MIB} MiB) | "
              f"{fmt(f['peak_over_baseline_mib'], '.1f')} MiB vs {f['hashing_bound_mib']} MiB |")
        print(f"| flood: real sign-in during it | {outcome}, {real['ms']:.0f} ms, {real['retries']} retries after 503 |")
    errs = r.get("gateway_errors_logged") or {}
    if errs:
        print(f"\ngateway errors logged ({sum(errs.values())}):")
        for line, n in list(errs.items())[:5]:
            print(f"  {n}× {line[:200]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/poolgate"), help="the poolgate binary")
    ap.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--postgres-url", help="a loopback PostgreSQL to make a fresh database on "
                                           "(default: a throwaway server from .ci/postgres.sh)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of 64 concurrent sign-ins (default 3)")
    ap.add_argument("--request-timeout", type=float, default=REQUEST_TIMEOUT,
                    help=f"seconds one request may take (default {REQUEST_TIMEOUT:.0f}; every scenario is also bounded to {SCENARIO_BOUND:.0f} s)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, gateway logs)")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 50:
        ap.error("--rounds must be 1…50")
    if not 1 <= args.request_timeout <= SCENARIO_BOUND:
        ap.error(f"--request-timeout must be 1…{SCENARIO_BOUND:.0f}")
    Browser.timeout = args.request_timeout
    binary = Path(args.bin)
    if not binary.is_absolute():
        binary = (Path.cwd() / binary).resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        log(f"no poolgate binary at {binary}: build it with `cargo build --release --bin poolgate` "
            "(or pass --bin target/debug/poolgate after `cargo build`)")
        return 2

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)

    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    d = Path(tempfile.mkdtemp(prefix="poolgate-signin-"))
    results, skipped = {}, {}
    pg = None
    try:
        for store in stores:
            pg_url = None
            if store == "postgres":
                pg = Postgres(args.postgres_url)
                try:
                    pg_url = pg.start()
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    log(f"[postgres] skipped: {e}")
                    skipped["postgres"] = str(e)
                    pg.stop()
                    pg = None
                    continue
            try:
                results[store] = run_store(binary, store, d / store, args.rounds, pg_url)
            except (RuntimeError, OSError) as e:
                log(f"[{store}] could not run: {e}")
                skipped[store] = str(e)
            finally:
                if pg:
                    pg.stop()
                    pg = None
    finally:
        PROCS.stop_all()
        if pg:
            pg.stop()
        if args.keep:
            log(f"work directory kept: {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)

    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "src"))
    out_dir = ROOT / "benches/load/results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"signin-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"commit": commit, "src_uncommitted_changes": dirty, "binary": str(binary),
                                "machine_cpus": os.cpu_count(), "rounds": args.rounds,
                                "request_timeout_s": args.request_timeout, "scenario_bound_s": SCENARIO_BOUND, "results": results,
                                "skipped": skipped}, indent=2))
    print(f"\npoolgate sign-in load: commit {commit}{' (src has uncommitted changes)' if dirty else ''}, binary {binary}")
    for store, r in results.items():
        print_summary(store, r)
    for store, why in skipped.items():
        print(f"\n## {store}: skipped — {why}")
    print(f"\nresults: {path.relative_to(ROOT)}")

    failed = any(r["concurrent_signins"]["failures"] or
                 (r.get("password_flood") and not r["password_flood"]["real_login"].get("ok"))
                 for r in results.values())
    if "sqlite" in stores and "sqlite" not in results:
        return 1
    if not results:
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        PROCS.stop_all()
