#!/usr/bin/env python3
"""Where a proxy's CPU goes per request: nginx `proxy_pass` (3), poolgate's public path (2)
and poolgate with an app session (6), under the same closed-loop load and pinning as
run.py. Each target runs twice, back to back: once unprofiled for its CPU per request,
once under `perf record` (DWARF call graphs) for how that CPU divides, so perf's own
overhead does not inflate the figures. Prints µs per request: kernel (and in it, waking
the task a send is for), user space, and poolgate's user space by phase of a request.
Also the upstream's sleeps per request: each is a wake-up its sender pays for.

    benches/load/profile                    (needs what benches/load/run installs, and perf)
    benches/load/profile --folded DIR       also writes each target's folded stacks, the
                                            input of a flame graph (inferno, speedscope)
"""

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402

SECONDS = 5

# The innermost phase a user-space sample falls in, by the first frame (leaf upwards)
# naming one.
PHASES = [
    ("poolgate's filters (routing, cookie, identity, headers, metrics)", ["poolgate::"]),
    ("upstream connection pool", ["get_http_session", "release_http_session", "idle_poll"]),
    ("upstream: write request", ["write_request_header"]),
    ("upstream: read response", ["read_response", "read_resp_header_parts"]),
    ("client: read request", ["server::HttpSession::read_request"]),
    ("client: write response", ["write_response_tasks", "write_response_header", "write_body"]),
    ("timers", ["pingora_timeout"]),
    ("Pingora's request state machine", ["proxy_1to1", "proxy_to_upstream", "process_request", "process_new"]),
    ("tokio scheduler", ["tokio::runtime"]),
]


def samples(perf_data):
    """Each sample's frames, leaf first."""
    out = subprocess.run(["perf", "script", "-i", str(perf_data)], capture_output=True, text=True).stdout
    for block in out.split("\n\n"):
        frames = [line.strip() for line in block.strip().split("\n")[1:]]
        if frames:
            yield frames


def function(frame):
    """`7f12ab <name>+0x1c (object)` → `<name>`."""
    m = re.match(r"[0-9a-f]+ (.+?)(\+0x[0-9a-f]+)? \(", frame)
    return m.group(1) if m else frame


def divide(perf_data, folded=None):
    """Shares of the samples: kernel, kernel waking a receiver, and user space by phase.
    With `folded`, also writes the stacks there, root first, one line per distinct stack."""
    shares, total, stacks = collections.Counter(), 0, collections.Counter()
    for frames in samples(perf_data):
        total += 1
        if folded:
            stacks[";".join(function(f).replace(";", ":") for f in reversed(frames))] += 1
        if frames[0].startswith("ffffffff"):
            shares["kernel"] += 1
            if any("sock_def_readable" in f for f in frames):
                shares["kernel: waking the receiver"] += 1
            continue
        shares["user"] += 1
        phase = next((name for f in frames for name, pats in PHASES if any(p in f for p in pats)), "other")
        shares[f"user: {phase}"] += 1
    if folded:
        folded.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.most_common()))
    return {k: v / max(total, 1) for k, v in shares.items()}


def measure(target, perf_data, upstream, folded):
    name, port, host, path, headers, server = target
    pids = lambda: ",".join(str(p) for p in harness.descendants(server.proc.pid))  # noqa: E731
    harness.settle([server])
    before, slept = harness.cpu_seconds(server.proc.pid), harness.sleeps(upstream.proc.pid)
    plain = harness.oha(port, host, path, headers, SECONDS)
    cpu_us = (harness.cpu_seconds(server.proc.pid) - before) / max(plain["ok"], 1) * 1e6
    sleeps = (harness.sleeps(upstream.proc.pid) - slept) / max(plain["ok"], 1)
    harness.settle([server])
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-o", str(perf_data),
                             "-p", pids(), "--", "sleep", str(SECONDS - 1)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness.oha(port, host, path, headers, SECONDS)
    perf.wait()
    return {"rps": plain["rps"], "cpu_us": cpu_us, "upstream_sleeps": sleeps, "shares": divide(perf_data, folded),
            "phases": "poolgate" in name}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folded", type=Path, help="a folder for each target's folded stacks")
    args = ap.parse_args()
    if args.folded:
        args.folded.mkdir(parents=True, exist_ok=True)
    if not shutil.which("perf"):
        raise SystemExit("needs perf (Debian: linux-perf)")
    d = Path(tempfile.mkdtemp(prefix="poolgate-profile-"))
    servers = []
    try:
        up, ng = harness.free_port(), harness.free_port()
        upstream = harness.Server("upstream", ["/usr/sbin/nginx", "-c", str(harness.nginx_conf(d, up, 0, 0, 0, True))],
                                  harness.LOAD_CPU, d / "up.log")
        servers.append(upstream)
        nginx = harness.Server("nginx", ["/usr/sbin/nginx", "-c", str(harness.nginx_conf(d, up, ng, harness.free_port(),
                                                                                        harness.free_port(), False))],
                               harness.PROXY_CPU, d / "nginx.log")
        servers.append(nginx)
        pd, cfg, pg, admin = harness.start_poolgate(d, servers, "base", up=up)
        gate = harness.launch(servers, pd, cfg, "poolgate")
        harness.wait_ready(admin)
        cookie = harness.app_session(pg, "app.bench.localhost", "alice", "bench-password", {})
        targets = [
            ("3 nginx proxy_pass", ng, "bench.localhost", "/", {}, nginx),
            ("2 poolgate, public path", pg, "app.bench.localhost", "/public", {}, gate),
            ("6 poolgate, app session", pg, "app.bench.localhost", "/", {"Cookie": cookie}, gate),
        ]
        results = {}
        for i, t in enumerate(targets):
            harness.log(f"profiling {t[0]}")
            folded = args.folded / f"{t[0].split(',')[0].replace(' ', '-')}.folded" if args.folded else None
            results[t[0]] = measure(t, d / f"perf-{i}.data", upstream, folded)
        report(results)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


def report(results):
    names = list(results)
    us = lambda r, k: r["cpu_us"] * r["shares"].get(k, 0)  # noqa: E731
    print("| µs per request | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    rows = [("req/s", lambda r: f"{r['rps']:.0f}"), ("CPU", lambda r: f"{r['cpu_us']:.1f}"),
            ("kernel", lambda r: f"{us(r, 'kernel'):.1f}"),
            ("… of it waking the receiver of a send", lambda r: f"{us(r, 'kernel: waking the receiver'):.1f}"),
            ("user space", lambda r: f"{us(r, 'user'):.1f}")]
    # The phases are poolgate's (Pingora's) functions: other proxies' rows of them stay empty.
    phase = lambda r, k: f"{us(r, k):.1f}" if r["phases"] else "–"  # noqa: E731
    rows += [(f"… {name}", lambda r, name=name: phase(r, "user: " + name)) for name, _ in PHASES]
    rows += [("… other", lambda r: phase(r, "user: other")),
             ("upstream sleeps per request", lambda r: f"{r['upstream_sleeps']:.2f}")]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    print("\nThe phases are those of Pingora's request path; nginx's user space is not divided.")


if __name__ == "__main__":
    sys.exit(main())
