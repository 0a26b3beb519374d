"""Load test of `symbackprop serve` on loopback: many derive requests from concurrent clients, with
pathological (slow) formulas mixed in.

    python bench/web_load.py                        # 1,000 requests, 20 clients, its own server
    python bench/web_load.py --requests 60 --clients 6 --slow-every 30    # quick
    python bench/web_load.py --url http://127.0.0.1:8000/                 # a server already running

It measures, in order:
1. warm first derive: the first /api/derive of the handout's example on a freshly started (warm) server,
   then the median of the next 20, and the first full page (gradients, steps, both graphs, module);
2. control: as many simple requests only, from the same clients (the latency without slow formulas);
3. load: REQUESTS derive requests from CLIENTS clients, every SLOW_EVERY-th one a formula that runs past
   the time limit; simple ones must all answer 200, slow ones 200 or 422 (time limit);
4. burst: more requests at once than workers plus queue hold, while every worker is busy; the
   overflow must get 429 (deliberate), the rest 200 or 422.
Errors are any other status or a failed connection. The bound checked: no simple request under load
takes longer than the control's slowest plus the time limit.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

HANDOUT = {"formula": "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "shapes": "W1=h,d W2=k,h x=d b=h y=k"}
SIMPLE = [
    HANDOUT,
    {"formula": "0.5 * norm(A @ x - b)**2", "shapes": "A=m,n x=n b=m"},
    {"formula": "logdet(X)", "shapes": "X=n,n"},
    {"formula": "trace(A @ X @ B)", "shapes": "A=p,m X=m,n B=n,p"},
    {"formula": "a @ inv(X) @ b", "shapes": "a=n X=n,n b=n"},
    {"formula": "sum(log(1 + exp(-y * (X @ w))))", "shapes": "X=m,n w=n y=m"},
    {"formula": "x @ B @ x", "shapes": "B=n,n x=n"},
    {"formula": "sum(softmax(W @ x) * y)", "shapes": "W=k,d x=d y=k"},
]


def slow_formula(n: int = 2000) -> str:
    """A balanced sum of n terms: seconds of work (far past a few seconds' limit at n = 2,000)."""
    terms = [f"sin(x{i % 50} * tanh(x{(i * 7) % 50} + {i}))" for i in range(n)]
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))]


async def _post(client, payload, info=None):
    t = time.perf_counter()
    try:
        r = await client.post("api/derive", json=payload)
        if info is not None:
            info["start"], info["server_s"] = t, (r.json().get("seconds") if r.status_code == 200 else None)
        return r.status_code, time.perf_counter() - t, r.headers.get("retry-after")
    except Exception as e:                      # a refused or dropped connection: an error
        return f"{type(e).__name__}", time.perf_counter() - t, None


async def _clients(url, jobs, clients, timeout):
    import httpx
    results = [None] * len(jobs)
    details = _clients.details = [None] * len(jobs)
    queue = list(enumerate(jobs))
    queue.reverse()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def one_client():
            while queue:
                i, (kind, payload) = queue.pop()
                info = {}
                status, took, _ = await _post(client, payload, info)
                results[i] = (kind, status, took)
                details[i] = info
        await asyncio.gather(*(one_client() for _ in range(clients)))
    return results


async def _burst(url, n_slow, n_simple, timeout):
    """n_slow slow requests to occupy every worker, then n_simple simple ones at once."""
    import httpx
    limits = httpx.Limits(max_connections=n_slow + n_simple + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        slow = [asyncio.create_task(_post(client, {"formula": slow_formula()})) for _ in range(n_slow)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:           # until every worker is busy with a slow one
            await asyncio.sleep(0.1)
            if (await client.get("healthz")).json()["busy"] >= n_slow:
                break
        simple = await asyncio.gather(*(_post(client, SIMPLE[i % len(SIMPLE)]) for i in range(n_simple)))
        return await asyncio.gather(*slow), simple


def run(url: str, args) -> dict:
    import httpx
    report = {"url": url, "requests": args.requests, "clients": args.clients, "slow_every": args.slow_every}
    # 1. warm first derive
    with httpx.Client(base_url=url, timeout=60) as c:
        t = time.perf_counter()
        r = c.post("api/derive", json=HANDOUT)
        report["first_derive_s"] = time.perf_counter() - t
        report["first_derive_server_s"] = r.json().get("seconds")
        assert r.status_code == 200, r.text
        times = []
        for _ in range(20):
            t = time.perf_counter()
            c.post("api/derive", json=HANDOUT)
            times.append(time.perf_counter() - t)
        report["derive_median_s"] = statistics.median(times)
        t = time.perf_counter()
        r = c.get("", params=HANDOUT)
        report["first_page_s"] = time.perf_counter() - t
        health = c.get("healthz").json()
    limits = health["limits"]
    report["workers"], report["time_limit"], report["queue"] = limits["workers"], limits["time_limit"], limits["queue"]
    timeout = limits["time_limit"] + limits["queue_timeout"] + 30
    # 2. control: simple only
    n_control = max(args.clients, args.requests)         # as many as the load, so both see the same hiccups
    control = asyncio.run(_clients(url, [("simple", SIMPLE[i % len(SIMPLE)]) for i in range(n_control)],
                                   args.clients, timeout))
    ctimes = [took for _, status, took in control if status == 200]
    report["control_errors"] = sum(status != 200 for _, status, _ in control)
    report["baseline_p50_s"], report["baseline_max_s"] = pct(ctimes, 50), max(ctimes, default=float("nan"))
    # 3. load
    slow = slow_formula()
    jobs = [("slow", {"formula": slow}) if args.slow_every and (i + 1) % args.slow_every == 0
            else ("simple", SIMPLE[i % len(SIMPLE)]) for i in range(args.requests)]
    t = time.perf_counter()
    results = asyncio.run(_clients(url, jobs, args.clients, timeout))
    report["load_wall_s"] = time.perf_counter() - t
    simple_t = [took for kind, status, took in results if kind == "simple" and status == 200]
    report["ok"] = sum(status == 200 for _, status, _ in results)
    report["time_limited"] = sum(kind == "slow" and status == 422 for kind, status, _ in results)
    report["busy"] = sum(status == 429 for _, status, _ in results)
    report["errors"] = sum(not (status == 200 or status == 429 or (kind == "slow" and status == 422))
                           for kind, status, _ in results)
    report["error_statuses"] = sorted({str(status) for kind, status, _ in results
                                       if not (status in (200, 429) or (kind == "slow" and status == 422))})
    report["slow_sent"] = sum(kind == "slow" for kind, _ in jobs)
    report["simple_p50_s"], report["simple_p99_s"] = pct(simple_t, 50), pct(simple_t, 99)
    report["simple_max_s"] = max(simple_t, default=float("nan"))
    all_t = [took for _, status, took in results if status in (200, 422)]
    report["all_p50_s"], report["all_p99_s"] = pct(all_t, 50), pct(all_t, 99)
    report["bound_ok"] = report["simple_max_s"] <= report["baseline_max_s"] + report["time_limit"]
    t0 = min(d["start"] for d in _clients.details if d)
    slowest = sorted((took, i) for i, (kind, status, took) in enumerate(results) if kind == "simple")[-5:]
    report["slowest_simple"] = [{"at_s": round(_clients.details[i]["start"] - t0, 2), "took_s": round(took, 3),
                                 "server_s": _clients.details[i]["server_s"]} for took, i in reversed(slowest)]
    report["slow_at_s"] = [round(_clients.details[i]["start"] - t0, 2) for i, (kind, _) in enumerate(jobs)
                           if kind == "slow"]
    # 4. burst: deliberate 429s
    if args.burst:
        n_simple = report["queue"] + report["workers"] + 10
        slow_r, simple_r = asyncio.run(_burst(url, report["workers"], n_simple, timeout))
        statuses = [s for s, _, _ in simple_r]
        report["burst_429"] = statuses.count(429)
        report["burst_retry_after"] = all(ra for s, _, ra in simple_r if s == 429)
        report["burst_errors"] = sum(s not in (200, 429, 503) for s in statuses) + \
            sum(s not in (200, 422) for s, _, _ in slow_r)
        report["burst_503"] = statuses.count(503)
        report["burst_statuses"] = {str(k): v for k, v in sorted(
            __import__("collections").Counter(str(s) for s in statuses + [s for s, _, _ in slow_r]).items())}
        report["errors_total"] = report["errors"] + report["burst_errors"]
    return report


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (default: start one)")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--slow-every", type=int, default=100, help="every Nth request is a slow formula (0: none)")
    p.add_argument("--workers", type=int, default=6, help="workers of the server it starts")
    p.add_argument("--time-limit", type=float, default=3.0, help="time limit of the server it starts")
    p.add_argument("--queue", type=int, default=64, help="queue of the server it starts")
    p.add_argument("--no-burst", dest="burst", action="store_false", help="skip the deliberate-429 burst")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if args.url:
        report = run(args.url.rstrip("/") + "/", args)
    else:
        from symbackprop.web.launch import background_server
        with background_server("--workers", str(args.workers), "--time-limit", str(args.time_limit),
                               "--queue", str(args.queue)) as url:
            report = run(url, args)
    try:
        report["loadavg"] = os.getloadavg()
    except OSError:
        pass
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        ms = lambda s: f"{s * 1000:.0f} ms"      # noqa: E731
        print(f"warm first derive (handout example): {ms(report['first_derive_s'])} "
              f"(server {ms(report['first_derive_server_s'])}); median of the next 20: {ms(report['derive_median_s'])}; "
              f"first full page: {ms(report['first_page_s'])}")
        print(f"server: {report['workers']} workers, time limit {report['time_limit']:g} s, queue {report['queue']}")
        print(f"control (simple only): p50 {ms(report['baseline_p50_s'])}, max {ms(report['baseline_max_s'])}")
        print(f"load: {report['requests']} requests from {report['clients']} clients in {report['load_wall_s']:.1f} s, "
              f"{report['slow_sent']} slow: {report['ok']} ok, {report['time_limited']} time-limited (422), "
              f"{report['busy']} busy (429), {report['errors']} errors {report['error_statuses'] or ''}")
        print(f"simple requests under load: p50 {ms(report['simple_p50_s'])}, p99 {ms(report['simple_p99_s'])}, "
              f"max {ms(report['simple_max_s'])}; all: p50 {ms(report['all_p50_s'])}, p99 {ms(report['all_p99_s'])}")
        print(f"bound (no simple request delayed by more than the time limit): "
              f"{'ok' if report['bound_ok'] else 'VIOLATED'}")
        if "burst_429" in report:
            print(f"burst: {report['burst_429']} deliberate 429s (Retry-After on each: {report['burst_retry_after']}), "
                  f"{report['burst_503']} 503s, {report['burst_errors']} errors; statuses {report['burst_statuses']}")
        if "loadavg" in report:
            print("load average: " + " ".join(f"{x:.2f}" for x in report["loadavg"]))
    return report


if __name__ == "__main__":
    r = main()
    sys.exit(0 if r.get("errors_total", r["errors"]) == 0 and r["bound_ok"] else 1)
