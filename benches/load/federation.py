#!/usr/bin/env python3
"""Federated sign-in against local single sign-on, and a federated user's requests against a
local user's: loopback only, bounded in count.

One gateway (SQLite), two pools: `employees` with an ERP app (a `poolgate whoami`
upstream) and a `kind = "pool"` source naming `suppliers`. Then, taking turns, round by
round:

  local SSO round trip   a browser with an employees SSO session and no ERP session, from
                         the app's sign-in link: /.poolgate/login → /oidc/authorize →
                         /.poolgate/callback → ERP (200).
  federated round trip   a browser with a suppliers SSO session and nothing at employees,
                         following the app's supplier sign-in link: /.poolgate/login?idp_hint=
                         suppliers → /oidc/authorize → /federation/suppliers/start → the
                         suppliers portal (its SSO answers) → /federation/suppliers/callback
                         (the gateway redeems the code at suppliers over HTTP and validates
                         the ID token) → /.poolgate/callback → ERP (200).
  …via the login page    the same from the ERP itself: the employees login page (200), then
                         its "Sign in with Suppliers" button — a person's click on the way.

Median and p90 of each, and their ratio. Then the hot path: --requests GETs of the ERP with
a local user's app cookie and as many with a federated user's, interleaved; medians and
their ratio (the target: the same cost).

Results: a table on stdout and JSON under benches/load/results/federation-*.json.

    benches/load/federation                       # target/release/poolgate
    benches/load/federation --bin target/debug/poolgate --rounds 50
"""

import argparse
import html
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from signin import PROCS, Browser, free_port, pct, wait_port, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-password-0123"


def config(d, http_port, admin_port, up_port):
    text = f"""version = 1
[listen]
http = "127.0.0.1:{http_port}"
[admin]
listen = "127.0.0.1:{admin_port}"
[store]
url = "sqlite:{d}/bench.db"
[log]
access = "off"

[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "enterprise"

[pools.employees.sources.suppliers]
kind = "pool"
name = "Suppliers"
pool = "suppliers"

[pools.employees.apps.erp]
hosts = ["erp.employees.localhost"]
upstreams = ["127.0.0.1:{up_port}"]

[pools.suppliers]
name = "Suppliers"
portal = "login.suppliers.localhost"
plan = "enterprise"
"""
    path = d / "poolgate.toml"
    path.write_text(text)
    return path


def follow(b, url, step):
    """GETs `url` and follows redirects; the last response."""
    for _ in range(12):
        r = b.request(url, headers={"Accept": "text/html"}, step=step)
        if r.status not in (302, 303, 307):
            return r
        url = r.location()
    raise RuntimeError(f"{step}: too many redirects")


def sign_in(b, url, username, step):
    """The hosted login: the page `url` leads to, its form, on to where it ends."""
    page = follow(b, url, step)
    form = re.search(r'<form method="post" action="/login">(.*?)</form>', page.text(), re.S)
    if page.status != 200 or not form:
        raise RuntimeError(f"{step}: no login page ({page.status}: {page.snippet()})")
    fields = dict(re.findall(r'name="(csrf|request)" value="([^"]*)"', form.group(1)))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    u = urllib.parse.urlsplit(page.url)
    origin = f"{u.scheme}://{u.netloc}"
    r = b.request(f"{origin}/login", "POST", headers={"Origin": origin, "Accept": "text/html"},
                  form={**fields, "username": username, "password": PASSWORD}, step=step)
    if r.status in (302, 303):
        r = follow(b, r.location(), step)
    if r.status != 200:
        raise RuntimeError(f"{step}: {r.status} {r.snippet()}")
    return r


def forget(b, *hosts):
    for h in hosts:
        b.jar.pop(h, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/poolgate"))
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    binary = Path(args.bin)
    if not binary.exists():
        print(f"no binary at {binary}: cargo build --release", file=sys.stderr)
        return 2
    d = Path(tempfile.mkdtemp(prefix="poolgate-federation-bench-"))
    http_port, admin_port, up_port = free_port(), free_port(), free_port()
    cfg = config(d, http_port, admin_port, up_port)
    for pool, user in (("employees", "eve"), ("suppliers", "sam")):
        subprocess.run([str(binary), "user", "add", "--config", str(cfg), "--pool", pool, user, "--password-stdin",
                        "--email", f"{user}@{pool}.example", "--name", user.title()],
                       input=f"{PASSWORD}\n", text=True, check=True, capture_output=True)
    try:
        whoami = PROCS.start([str(binary), "whoami", "--listen", f"127.0.0.1:{up_port}"], d / "whoami.log")
        wait_port(up_port, whoami)
        gw = PROCS.start([str(binary), "serve", "--config", str(cfg)], d / "poolgate.log")
        wait_ready(admin_port, "/readyz", gw)
        erp = f"http://erp.employees.localhost:{http_port}/"
        hinted = f"{erp}.poolgate/login?idp_hint=suppliers"
        portal_e = "login.employees.localhost"
        portal_s = f"http://login.suppliers.localhost:{http_port}/"

        local = Browser()
        sign_in(local, erp, "eve", "local sign-in")
        fed = Browser()
        sign_in(fed, portal_s, "sam", "suppliers sign-in")

        def local_round():
            # The app's sign-in link, as the federated round starts: /.poolgate/login.
            forget(local, "erp.employees.localhost")
            r = follow(local, f"{erp}.poolgate/login", "local round trip")
            assert r.status == 200 and b"x-poolgate-user" in r.body, r.snippet()

        def federated_round():
            # The app's "supplier sign-in" link: /.poolgate/login?idp_hint=suppliers.
            forget(fed, "erp.employees.localhost", portal_e)
            r = follow(fed, hinted, "federated round trip")
            assert r.status == 200 and b"suppliers" in r.body, r.snippet()

        def button_round():
            # A person at the login page pressing "Sign in with Suppliers".
            forget(fed, "erp.employees.localhost", portal_e)
            page = follow(fed, erp, "federated: login page")
            m = re.search(r'href="(/federation/suppliers/start\?[^"]+)"', html.unescape(page.text()))
            assert m, page.snippet()
            start = urllib.parse.urljoin(page.url, m.group(1))
            r = follow(fed, start, "federated round trip, with the button")
            assert r.status == 200 and b"suppliers" in r.body, r.snippet()

        federated_round()  # the first: makes the linked user
        local_round()
        times = {"local": [], "federated": [], "federated_via_login_page": []}
        for _ in range(args.rounds):
            for name, run in (("local", local_round), ("federated", federated_round),
                              ("federated_via_login_page", button_round)):
                t = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - t) * 1000)

        # The hot path: the same GET with each user's app cookie, interleaved.
        hot = {"local": [], "federated": []}
        for _ in range(args.requests):
            for name, b in (("local", local), ("federated", fed)):
                t = time.perf_counter()
                r = b.request(erp + "report", headers={"Accept": "application/json"}, step="hot path")
                hot[name].append((time.perf_counter() - t) * 1000)
                assert r.status == 200, r.status
    finally:
        PROCS.stop_all()

    def summary(xs):
        return {"median_ms": round(statistics.median(xs), 2), "p90_ms": round(pct(xs, 90), 2)}

    table = {k: summary(v) for k, v in times.items()}
    hot_table = {k: summary(v) for k, v in hot.items()}
    ratio = table["federated"]["median_ms"] / table["local"]["median_ms"]
    ratio_p90 = table["federated"]["p90_ms"] / table["local"]["p90_ms"]
    hot_ratio = hot_table["federated"]["median_ms"] / hot_table["local"]["median_ms"]
    print(f"{'round trip':<32} {'median ms':>10} {'p90 ms':>10}")
    for k, v in table.items():
        print(f"{k:<32} {v['median_ms']:>10.2f} {v['p90_ms']:>10.2f}")
    page_ratio = table["federated_via_login_page"]["median_ms"] / table["local"]["median_ms"]
    print(f"federated / local: {ratio:.2f}x median, {ratio_p90:.2f}x p90 (target <= 2x)")
    print(f"with the login page and its button on the way: {page_ratio:.2f}x median")
    for k, v in hot_table.items():
        print(f"{k + ' user GET':<22} {v['median_ms']:>10.3f} {v['p90_ms']:>10.3f}")
    print(f"hot path, federated / local: {hot_ratio:.2f}x median")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = ROOT / "benches/load/results" / f"federation-{stamp}.json"
    out.write_text(json.dumps({
        "commit": commit, "rounds": args.rounds, "requests": args.requests,
        "round_trip": table, "ratio_median": round(ratio, 2), "ratio_p90": round(ratio_p90, 2),
        "ratio_median_via_login_page": round(page_ratio, 2),
        "hot_path": hot_table, "hot_ratio_median": round(hot_ratio, 2),
    }, indent=2))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
