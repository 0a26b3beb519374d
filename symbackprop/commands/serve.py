"""`symbackprop serve`: the web page a course runs for its students (the optional `web` extra)."""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys

from ..errors import SymbackpropError, require_extra

HELP = """Serve the web page: Derive (gradients, steps, graphs, NumPy module), Check (a claim or a
worked-solution file) and ReLU (a small training run), plus a JSON API under /api/.
Each request runs in a worker process under a time limit; a full queue answers 429.
Binds to loopback (127.0.0.1) unless --host says otherwise: see docs/web.md before
serving other machines."""

EPILOG = """examples:
  symbackprop serve                       # http://127.0.0.1:8000/
  symbackprop serve --port 9000 --workers 4 --time-limit 5
  symbackprop serve --host 0.0.0.0        # every network interface: read docs/web.md first"""


def add_parser(sub) -> argparse.ArgumentParser:
    from ..web.limits import MAX_BODY_CEILING, Limits
    d = Limits()
    p = sub.add_parser("serve", help="serve the web page and the JSON API", description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, each serving one request at a time (default: the number of CPUs, 2 to 8)")
    p.add_argument("--spares", type=int, default=d.spares,
                   help=f"warm workers kept aside to replace a stopped one at once (default {d.spares})")
    p.add_argument("--queue", type=int, default=d.queue,
                   help=f"requests that may wait for a worker; more get 429 (default {d.queue})")
    p.add_argument("--queue-timeout", type=float, default=d.queue_timeout,
                   help=f"seconds a request may wait for a worker before 503 (default {d.queue_timeout:g})")
    p.add_argument("--time-limit", type=float, default=d.time_limit,
                   help=f"seconds of CPU (and of wall clock) per request before its worker is stopped "
                        f"(default {d.time_limit:g})")
    p.add_argument("--relu-time-limit", type=float, default=d.relu_time_limit,
                   help=f"seconds per ReLU run (default {d.relu_time_limit:g})")
    p.add_argument("--relu-max-steps", type=int, default=d.relu_max_steps,
                   help=f"most SGD steps a ReLU run may ask for (default {d.relu_max_steps:,})")
    p.add_argument("--per-client", type=int, default=d.per_client,
                   help="requests one client address may have running or waiting; more get 429 (default 0: no "
                        "limit; behind a reverse proxy, use with --forwarded-allow-ips)")
    p.add_argument("--max-body", type=int, default=d.max_body,
                   help=f"bytes per request body; larger ones get 413 (default {d.max_body:,}; at most "
                        f"{MAX_BODY_CEILING:,})")
    p.add_argument("--forwarded-allow-ips", default=None,
                   help="proxies whose X-Forwarded-For/-Proto headers are trusted (uvicorn's option; default: none)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return p


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    require_extra("web", ["starlette", "uvicorn", "latex2mathml", "multipart"], "symbackprop serve")
    import uvicorn
    from ..web.app import create_app
    from ..web.limits import MAX_BODY_CEILING, Limits
    workers = args.workers if args.workers is not None else default_workers()
    checks = [(workers >= 1, "--workers must be at least 1"), (args.queue >= 0, "--queue must be 0 or more"),
              (args.time_limit > 0 and args.relu_time_limit > 0, "time limits must be positive"),
              (0 < args.max_body <= MAX_BODY_CEILING, f"--max-body must be between 1 and {MAX_BODY_CEILING:,}"),
              (args.relu_max_steps >= 100, "--relu-max-steps must be at least 100"),
              (0 < args.port < 65536, "--port must be between 1 and 65535")]
    for ok, message in checks:
        if not ok:
            raise SymbackpropError(message)
    limits = Limits(workers=workers, spares=max(0, args.spares), queue=args.queue, queue_timeout=args.queue_timeout, time_limit=args.time_limit,
                    relu_time_limit=args.relu_time_limit, max_body=args.max_body, relu_max_steps=args.relu_max_steps, per_client=max(0, args.per_client))
    if not _is_loopback(args.host):
        print(f"warning: serving on {args.host}, reachable from other machines. The page has no login; anyone who "
              "can reach it can use its workers. See docs/web.md (reverse proxy, firewall).", file=sys.stderr)
    app = create_app(limits)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"symbackprop serve: http://{shown}:{args.port}/ ({workers} workers, "
          f"{args.time_limit:g} s per request; warming up the workers first)", file=sys.stderr)
    # uvicorn re-raises SIGTERM once it has shut down; exit cleanly then, so that atexit handlers run
    # (multiprocessing removes its socket folder in TMPDIR: the server leaves no file behind).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                server_header=False, date_header=True, timeout_keep_alive=5,
                limit_concurrency=limits.queue + 4 * workers + 16, h11_max_incomplete_event_size=64 * 1024,
                proxy_headers=args.forwarded_allow_ips is not None,
                forwarded_allow_ips=args.forwarded_allow_ips)
    return 0
