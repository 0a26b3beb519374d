"""`symbackprop serve` in a background process, for tests, benchmarks and screenshots.

    with background_server("--workers", "2") as url:
        httpx.get(url + "api/derive", params={"formula": "x @ x", "shapes": "x=n"})
"""
from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def background_server(*args: str, env: dict | None = None, cwd: str | None = None, timeout: float = 240.0):
    """Start the server on a free loopback port, wait until its workers are warm, yield its base URL
    (ending in /), and stop it afterwards. Its log is kept in memory (`server.log` lines) only."""
    port = free_port()
    cmd = [sys.executable, "-m", "symbackprop", "serve", "--port", str(port), "--log-level", "warning", *args]
    full_env = {**os.environ, **(env or {})}
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    full_env["PYTHONPATH"] = here + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=full_env, cwd=cwd, text=True, errors="replace")
    log = collections.deque(maxlen=400)
    reader = threading.Thread(target=lambda: [log.append(line) for line in proc.stdout], daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n" + "".join(log))
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in time:\n" + "".join(log))
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        background_server.last_log = list(log)
