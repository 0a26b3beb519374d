"""The server's limits, in one place (no web packages needed to read them: `serve --help` shows them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """The server's limits (`symbackprop serve --help` sets each; docs/web.md explains them)."""
    workers: int = 2
    spares: int = 1                  # warm workers kept aside to replace a stopped one at once
    queue: int = 64                  # requests waiting for a worker before 429
    queue_timeout: float = 30.0      # seconds a request may wait for a worker before 503
    time_limit: float = 10.0         # seconds (CPU, and wall clock) per request
    relu_time_limit: float = 60.0    # seconds for a ReLU run
    max_body: int = 256 * 1024       # bytes per request body (413 beyond); at most 1 MiB (uploads stay in memory)
    relu_max_steps: int = 20_000
    relu_max_width: int = 40
    per_client: int = 0              # requests one client address may have running or waiting (0: no limit)
    warm: bool = True                # warm each worker up (Graphviz compile, the handout's example) before use


MAX_BODY_CEILING = 1024 * 1024       # Starlette keeps uploads in memory up to 1 MiB; beyond, it would spill to disk
