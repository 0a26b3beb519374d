"""A pool of worker processes that can be killed: each request runs in one, under a time limit.

- Each worker is a process forked from a forkserver that has imported symbackprop and derived the
  handout's example (web/preload.py), so a replacement starts warm in a fraction of a second. The
  embedded Graphviz (WebAssembly) is compiled once by the server and handed to each worker as a
  compiled module, which loads in milliseconds (tasks.compile_graphviz, install_graphviz). A worker
  then serves one request at a time.
- Before each request the worker lowers its own RLIMIT_CPU to the CPU time used so far plus the
  limit, so the kernel stops a runaway computation (SIGXCPU); core dumps are off (no file written).
  The server also waits at most the limit in wall-clock time, then kills the worker. Either way the
  request gets a clear "time limit" answer and a fresh worker replaces the old one.
- Spare workers (default 1) wait warm outside the rotation, so a killed worker is replaced at once
  (the replacement's warm-up, seconds, is paid by the next spare, not by the requests behind it).
- Requests wait for a free worker in a bounded queue: when `queue` requests already wait, the next
  gets Busy (HTTP 429); one that waits longer than `queue_timeout` gets Unavailable (HTTP 503).
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("symbackprop.web")

#: Seconds a new worker may take to start and warm up before it is given up on.
STARTUP_TIMEOUT = 180.0
#: A request still running after this many seconds has its worker's CPU priority lowered (nice 10), so that
#: simple requests in other workers keep their speed; such a worker is replaced once it answers.
SLOW_AFTER = 1.0
#: Extra wall-clock seconds granted after the time limit before a worker is killed (the answer's transfer).
GRACE = 0.25


class PoolError(Exception):
    status = 503

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Busy(PoolError):
    """The queue is full."""
    status = 429


class Unavailable(PoolError):
    """No worker became free in time, or the server is shutting down."""
    status = 503


class TimeLimit(PoolError):
    """The request ran past its time limit; its worker was stopped and replaced."""
    status = 422


class WorkerDied(PoolError):
    """The worker stopped without an answer (not the time limit)."""
    status = 500


# ----- the worker process -----

def _worker_main(conn, warm: bool, graphviz: bytes | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C in the terminal: the server stops its workers
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # a SIGXCPU kill leaves no core file behind
    import sys
    sys.dont_write_bytecode = True
    from . import tasks
    if warm:
        tasks.warm(graphviz)
    conn.send(("ready", os.getpid()))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        kind, payload, limit = msg
        ru = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(ru.ru_utime + ru.ru_stime + limit) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        t0 = time.perf_counter()
        result = tasks.run(kind, payload)
        result["seconds"] = time.perf_counter() - t0
        conn.send(result)


class Worker:
    def __init__(self, ctx, warm: bool, graphviz: bytes | None = None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, warm, graphviz), daemon=True,
                                   name="symbackprop-worker")
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self.niced = False

    def wait_ready(self, timeout: float) -> bool:
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()[0] == "ready"
        except (EOFError, OSError):
            pass
        return False

    def call(self, kind: str, payload: dict, limit: float) -> dict:
        """Send one request and wait for the answer; TimeLimit or WorkerDied if there is none."""
        try:
            self.conn.send((kind, payload, limit))
            first = min(SLOW_AFTER, limit + GRACE)
            if self.conn.poll(first):
                return self.conn.recv()
            self._lower_priority()
            if self.conn.poll(limit + GRACE - first):
                return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(1.0)
            code = self.process.exitcode
            if code == -signal.SIGXCPU or code == -signal.SIGKILL:
                raise TimeLimit(f"the computation used more than its time limit of {limit:g} s of CPU time "
                                "and was stopped") from None
            raise WorkerDied(f"the worker stopped unexpectedly (exit code {code}); please report the input") from None
        self.kill()
        raise TimeLimit(f"the computation took longer than its time limit of {limit:g} s and was stopped")

    def _lower_priority(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, 10)
            self.niced = True
        except OSError:
            pass

    def kill(self) -> None:
        try:
            self.process.kill()
            self.process.join(2.0)
        except (OSError, ValueError, AssertionError):
            pass
        try:
            self.conn.close()
        except OSError:
            pass

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError, ValueError):
            pass
        self.process.join(0.5)
        if self.process.is_alive():
            self.kill()


class WorkerPool:
    """`size` workers; `run(kind, payload, limit)` runs one task in a free one (see the module docstring)."""

    def __init__(self, size: int = 2, queue: int = 64, queue_timeout: float = 30.0, warm: bool = True,
                 start_method: str = "forkserver", spares: int = 1):
        if size < 1 or spares < 0:
            raise ValueError("a pool needs at least one worker")
        self.size, self.queue, self.queue_timeout, self.warm = size, queue, queue_timeout, warm
        self.spares = spares
        self._spare: list[Worker] = []
        self._graphviz: bytes | None = None
        self._rotation = 0                           # workers idle or busy (not spares)
        self.start_method = start_method
        self._ctx = None
        self._idle: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._spawner: ThreadPoolExecutor | None = None
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self.waiting = 0
        self.busy = 0
        self.closed = False
        self.stats = {"served": 0, "time_limit": 0, "died": 0, "busy": 0, "unavailable": 0, "replaced": 0,
                      "recycled": 0}

    # ----- lifecycle -----

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=self.size + 2, thread_name_prefix="symbackprop-call")
        self._spawner = ThreadPoolExecutor(max_workers=max(2, self.size + self.spares),
                                           thread_name_prefix="symbackprop-spawn")
        self._ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._ctx.set_forkserver_preload(["symbackprop.web.preload" if self.warm else "symbackprop.web.tasks"])
        if self.warm:                                # the embedded Graphviz, compiled once for every worker
            from .tasks import compile_graphviz
            self._graphviz = await self._loop.run_in_executor(self._spawner, compile_graphviz)
        started = await asyncio.gather(*(self._loop.run_in_executor(self._spawner, self._spawn)
                                         for _ in range(self.size + self.spares)))
        for w in started:
            if w is None:
                continue
            if self._rotation < self.size:
                self._rotation += 1
                self._idle.put_nowait(w)
            else:
                self._spare.append(w)
        if not self._rotation:
            raise RuntimeError("no worker process could be started")
        for _ in range(self.size + self.spares - sum(w is not None for w in started)):
            self._spawner.submit(self._refill)

    def _spawn(self) -> Worker | None:
        """Start one worker and wait until it is warm (runs in an executor thread)."""
        if self.closed:
            return None
        try:
            w = Worker(self._ctx, self.warm, self._graphviz)
        except OSError as e:
            log.error("could not start a worker: %s", e)
            return None
        if not w.wait_ready(STARTUP_TIMEOUT):
            log.error("a worker did not start within %s s", STARTUP_TIMEOUT)
            w.kill()
            return None
        with self._lock:
            if self.closed:
                w.stop()
                return None
            self._workers.add(w)
        return w

    def _replace(self, old: Worker, count: bool = True) -> None:
        """Kill `old` (off the event loop); a warm spare takes its place at once, and a new worker is started
        to refill."""
        self._spawner.submit(old.kill)
        with self._lock:
            self._workers.discard(old)
            self._rotation -= 1
            spare = self._spare.pop() if self._spare and not self.closed else None
            if spare is not None:
                self._rotation += 1
        if self.closed:
            return
        self.stats["replaced"] += count
        if spare is not None:
            self._idle.put_nowait(spare)             # _replace runs on the event loop (a done-callback)
        self._spawner.submit(self._refill)

    def _refill(self) -> None:
        """Start a worker (in an executor thread): into the rotation if it is short, else a spare."""
        for attempt in range(5):
            w = self._spawn()
            if w is not None:
                with self._lock:
                    to_rotation = self._rotation < self.size
                    if to_rotation:
                        self._rotation += 1
                    else:
                        self._spare.append(w)
                if to_rotation:
                    self._loop.call_soon_threadsafe(self._idle.put_nowait, w)
                return
            if self.closed:
                return
            time.sleep(min(30, 2 ** attempt))
        log.error("could not start a worker; the pool runs with one fewer")

    async def close(self) -> None:
        self.closed = True
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
            self._spare.clear()
        for w in workers:
            w.stop()
        for ex in (self._executor, self._spawner):
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> int:
        """Workers in the rotation (idle or busy), spares not counted."""
        return self._rotation

    @property
    def spare(self) -> int:
        return len(self._spare)

    @property
    def full(self) -> bool:
        """Every worker and spare is up."""
        return self._rotation == self.size and len(self._spare) == self.spares

    # ----- requests -----

    async def run(self, kind: str, payload: dict, limit: float) -> dict:
        """The task's answer {"status", "result" or "error", "seconds"}; raises a PoolError subclass."""
        if self.closed:
            raise Unavailable("the server is shutting down", retry_after=5)
        if self._idle.empty() and self.waiting >= self.queue:
            self.stats["busy"] += 1
            raise Busy(f"the server is busy ({self.waiting} requests are waiting); try again in a moment",
                       retry_after=1)
        self.waiting += 1
        try:
            worker = await asyncio.wait_for(self._idle.get(), self.queue_timeout)
        except asyncio.TimeoutError:
            self.stats["unavailable"] += 1
            raise Unavailable(f"no worker became free within {self.queue_timeout:g} s; try again later",
                              retry_after=5) from None
        finally:
            self.waiting -= 1
        self.busy += 1
        fut = self._loop.run_in_executor(self._executor, worker.call, kind, payload, limit)
        fut.add_done_callback(lambda f: self._done(worker, f))
        return await asyncio.shield(fut)

    def _done(self, worker: Worker, fut) -> None:
        """Back to the idle queue, or replaced when it was stopped (also when the request went away)."""
        self.busy -= 1
        exc = None if fut.cancelled() else fut.exception()
        if exc is None and not fut.cancelled():
            self.stats["served"] += 1
            if self.closed:
                worker.stop()
            elif worker.niced:                       # it ran long at a lower priority: a fresh one replaces it
                self.stats["recycled"] += 1
                self._replace(worker, count=False)
            else:
                self._idle.put_nowait(worker)
            return
        self.stats["time_limit" if isinstance(exc, TimeLimit) else "died"] += 1
        self._replace(worker)
