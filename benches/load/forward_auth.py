#!/usr/bin/env python3
"""Forward-auth under load: nginx with auth_request asking poolgate's forward-auth endpoint
(a signed-in app session), beside nginx with auth_request asking a trivial endpoint (nginx
itself answering 204 with a user header), in ONE run, the same upstream and load:

  4 nginx + auth_request → a trivial auth endpoint       (as in benches/load/run)
  8 nginx + auth_request → poolgate /.poolgate/auth/nginx (an app session cookie)
  9 nginx + auth_request → nginx answering with poolgate's answer, byte for byte (its
    identity headers and assertion, as (8) gets them): what the answer alone costs, and
    so the ceiling for any auth server that gives it

Proxies (nginx, poolgate) are pinned to CPU 0, the load generator and the upstream to CPU 1.
The two take turns for --rounds rounds; the ratio is the median of the rounds' ratios.
Target: (8) ≥ 0.85 × (4). Results: a line on stdout and JSON under benches/load/results/.

    benches/load/forward_auth      (installs nginx and oha, builds poolgate --release)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (LOAD_CPU, PROXY_CPU, ROOT, TOOLS, Server, app_session, auth_request_server, check, cpu_seconds,  # noqa: E402
                 free_port, header, launch, log, median, nginx_conf, oha, request, run, settle, start_poolgate,
                 wait_ready)


def tools():
    if not os.path.exists("/usr/sbin/nginx"):
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "nginx"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (TOOLS / "oha").exists():
        run(["cargo", "install", "--locked", "--root", str(TOOLS.parent), "oha"])
    run(["cargo", "build", "--release", "--quiet", "--bin", "poolgate"], cwd=ROOT)


def fronts_conf(d, upstream, trivial_port, trivial_auth_port, forward_port, poolgate, answer, copy_port, copy_auth_port):
    """(4), (8) and (9) in one nginx: the same upstream pool, the same auth_request shape;
    (9) answers with `answer`, poolgate's answer headers."""
    skip = {"date", "content-length", "connection", "server"}
    copy = "".join(f' add_header {k} "{v}";' for k, v in answer if k.lower() not in skip)
    check = " proxy_set_header X-Original-URL http://app.bench.localhost$request_uri; proxy_set_header X-Original-Method $request_method;"
    conf = f"""pid {d}/fronts.pid; error_log {d}/fronts.err warn; worker_processes 1; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  upstream trivial {{ server 127.0.0.1:{trivial_auth_port}; keepalive 64; }}
  upstream poolgate {{ server 127.0.0.1:{poolgate}; keepalive 64; }}
  upstream copy {{ server 127.0.0.1:{copy_auth_port}; keepalive 64; }}
{auth_request_server(trivial_port, "trivial/", "x_user")}
  server {{ listen 127.0.0.1:{trivial_auth_port}; location / {{ add_header X-User alice; return 204; }} }}
{auth_request_server(forward_port, "poolgate/.poolgate/auth/nginx", "x_poolgate_user", check)}
{auth_request_server(copy_port, "copy/", "x_poolgate_user")}
  server {{ listen 127.0.0.1:{copy_auth_port}; location / {{{copy} return 200; }} }}
}}
"""
    path = d / "fronts.conf"
    path.write_text(conf)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=4, help="length of each measured run")
    ap.add_argument("--rounds", type=int, default=5, help="times each target is measured, taking turns")
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    if not args.no_install:
        tools()
    d = Path(tempfile.mkdtemp(prefix="poolgate-forward-auth-"))
    servers = []
    try:
        up = free_port()
        upstream = Server("upstream", ["/usr/sbin/nginx", "-c", str(nginx_conf(d, up, 0, 0, 0, True))], LOAD_CPU, d / "up.log")
        servers.append(upstream)
        pd, cfg, pg, admin = start_poolgate(d, servers, "gate", up=up)
        # nginx is a trusted proxy: the only kind forward-auth answers.
        cfg.write_text(cfg.read_text().replace("[proxy]\n", '[proxy]\ntrusted_proxies = ["127.0.0.1"]\n'))
        gate = launch(servers, pd, cfg, "poolgate")
        wait_ready(admin)
        cookie = app_session(pg, "app.bench.localhost", "alice", "bench-password", {})
        st, answer, body = request(pg, "app.bench.localhost", "/.poolgate/auth/nginx", headers={
            "Cookie": cookie, "X-Original-URL": "http://app.bench.localhost/", "X-Original-Method": "GET"})
        assert st == 200 and header(answer, "x-poolgate-assertion"), f"the check: {st} {body[:200]}"
        trivial, trivial_auth, forward, copy, copy_auth = (free_port() for _ in range(5))
        conf = fronts_conf(d, up, trivial, trivial_auth, forward, pg, answer, copy, copy_auth)
        fronts = Server("fronts", ["/usr/sbin/nginx", "-c", str(conf)], PROXY_CPU, d / "fronts.log")
        servers.append(fronts)
        time.sleep(1)
        targets = [("4 nginx + auth_request (trivial)", trivial), ("8 nginx + auth_request → poolgate", forward),
                   ("9 nginx + auth_request → nginx with poolgate's answer", copy)]
        for _, port in targets:
            check(port, "app.bench.localhost", "/", {"Cookie": cookie})
        runs = {name: [] for name, _ in targets}
        for rnd in range(args.rounds):
            for name, port in targets:
                settle(servers)
                before = cpu_seconds(fronts.proc.pid) + cpu_seconds(gate.proc.pid)
                r = oha(port, "app.bench.localhost", "/", {"Cookie": cookie}, args.seconds)
                r["proxies_cpu_us_per_req"] = (cpu_seconds(fronts.proc.pid) + cpu_seconds(gate.proc.pid) - before) / max(r["ok"], 1) * 1e6
                assert r["errors"] == 0, f"{name}: {r['errors']} errors"
                runs[name].append(r)
                log(f"round {rnd + 1} {name}: {r['rps']:.0f} req/s")
        four, eight, nine = (runs[n] for n, _ in targets)
        x = median([e["rps"] / f["rps"] for e, f in zip(eight, four)])
        x9 = median([e["rps"] / f["rps"] for e, f in zip(nine, four)])
        out = ROOT / "benches/load/results"
        out.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        result = {"commit": commit, "rounds": args.rounds, "seconds": args.seconds, "x_8_over_4": x, "x_9_over_4": x9,
                  "answer_bytes": sum(len(k) + len(v) + 4 for k, v in answer),
                  "targets": {n: {"rps": median([r["rps"] for r in rs]),
                                  "proxies_cpu_us_per_req": median([r["proxies_cpu_us_per_req"] for r in rs]),
                                  "rounds": rs} for n, rs in runs.items()}}
        (out / f"forward-auth-{stamp}.json").write_text(json.dumps(result, indent=2))
        for n, t in result["targets"].items():
            print(f"{n}: {t['rps']:.0f} req/s, {t['proxies_cpu_us_per_req']:.1f} µs proxy CPU per request")
        print(f"(8) / (4): {x:.2f} (target ≥ 0.85); (9) / (4): {x9:.2f}; benches/load/results/forward-auth-{stamp}.json")
        return 0
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
