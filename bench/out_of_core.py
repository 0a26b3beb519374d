"""An out-of-core gradient: logistic regression over a dataset on disk larger than the machine's RAM.

The gradient module is `symbackprop codegen --target array-api --batch a,y` of the per-example loss
softplus(a·w) − y·(a·w); the same file that runs on NumPy arrays runs here on Dask arrays chunked along
the batch axis (rows), read from .npy files on disk, one file per chunk (dask.array.to_npy_stack /
from_npy_stack). Dask's threaded scheduler with a fixed number of workers keeps only a few chunks in
memory at a time, so the peak memory is bounded by the chunk size, not by the data.

    python bench/out_of_core.py --dir /scratch/ooc                        # 1.5 × RAM of data (default)
    python bench/out_of_core.py --dir /tmp/ooc --size 200M --chunk 16M    # a quick check

Steps: (1) write X (rows × features, float64) and y (0/1 labels drawn from a logistic model) to --dir
in chunks of --chunk bytes (skipped when the data is already there); (2) in a fresh process (so that
its peak RSS counts the gradient alone), compute the gradient (grad()) and then the mean loss (forward())
over every row with
Dask's threaded scheduler and --workers threads, sampling the RSS every few ms (psutil) and reading
getrusage's maximum; (3) check: the same module on Dask arrays over a subsample of the rows against
the gradient of that subsample computed in memory with NumPy by hand, to 1e-10 (relative), and with
--verify-full the full gradient against a NumPy loop over the chunk files.

The chunk budget is workers × chunk bytes (the data the threads hold at once); the report gives the
peak RSS, its ratio to that budget, and the peak above the process' baseline (Python, NumPy, Dask).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMULA = "softplus(a @ w) - y * (a @ w)"
SHAPES = {"a": "n", "w": "n"}
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(float(text))


def rows_for(size: int, features: int) -> int:
    """Rows of X (float64, `features` columns) and y that make at least `size` bytes: rounded up, so
    that the data is never below the size asked for (1.5 × RAM by default)."""
    return max(1, -(-size // (8 * (features + 1))))


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def total_ram() -> int:
    try:
        import psutil
        return psutil.virtual_memory().total
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ----- (1) the data on disk -----

def prepare(folder: Path, rows: int, features: int, chunk_rows: int, workers: int, seed: int) -> None:
    """X and y as stacks of .npy files, one per chunk of rows; y ~ Bernoulli(sigmoid(X w_true))."""
    import dask
    import dask.array as da
    import numpy as np
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features))
    w_true = np.random.default_rng(seed + 1).standard_normal(features) / np.sqrt(features)
    p = 1.0 / (1.0 + da.exp(-(X @ w_true)))
    y = (rng.uniform(size=rows, chunks=chunk_rows) < p).astype(np.float64)
    with dask.config.set(scheduler="threads", num_workers=workers):
        da.to_npy_stack(str(folder / "X"), X)
        da.to_npy_stack(str(folder / "y"), y)         # X again, from the same seeds: the same values
    (folder / "meta.json").write_text(json.dumps({"rows": rows, "features": features, "chunk_rows": chunk_rows,
                                                  "seed": seed}))


# ----- (2) and (3): the measurement, in a fresh process -----

def measure(folder: Path, module_path: Path, workers: int, subsample: int, verify_full: bool) -> dict:
    import importlib.util
    import resource
    import threading

    import dask
    import dask.array as da
    import numpy as np
    import psutil

    spec = importlib.util.spec_from_file_location("logistic_array_api", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    meta = json.loads((folder / "meta.json").read_text())
    X = da.from_npy_stack(str(folder / "X"), mmap_mode=None)   # read() each chunk file: no memory map in the RSS
    y = da.from_npy_stack(str(folder / "y"), mmap_mode=None)
    w = da.from_array(np.random.default_rng(meta["seed"] + 2).standard_normal(meta["features"]) * 0.1)
    # lazy graphs over the chunks. grad() and forward() are computed one after the other: value_and_grad in one
    # dask.compute held every chunk (Dask's ordering finishes the loss' reduction first, while the gradient
    # still needs each chunk of X), whereas each alone streams the chunks (docs/scale.md)
    grad_w = module.grad(a=X, w=w, y=y)["w"]
    loss = module.forward(a=X, w=w, y=y)

    proc = psutil.Process()
    baseline = proc.memory_info().rss
    samples, stop = [baseline], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(proc.memory_info().rss)
            time.sleep(0.002)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    g, = dask.compute(grad_w, scheduler="threads", num_workers=workers)
    seconds = time.perf_counter() - t
    value, = dask.compute(loss, scheduler="threads", num_workers=workers)
    loss_seconds = time.perf_counter() - t - seconds
    stop.set()
    sampler.join()
    peak = max(max(samples), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    # the subsample: out of core (the module on Dask arrays) against in memory (NumPy, by hand)
    m = min(subsample, meta["rows"])
    sub_value, sub_grads = module.value_and_grad(a=X[:m], w=w, y=y[:m])
    sub_value, sub_g = dask.compute(sub_value, sub_grads["w"], scheduler="threads", num_workers=workers)
    Xs, ys, wn = np.asarray(X[:m].compute()), np.asarray(y[:m].compute()), np.asarray(w.compute())
    z = Xs @ wn
    want_g = Xs.T @ (1.0 / (1.0 + np.exp(-z)) - ys) / m
    want_value = float(np.mean(np.logaddexp(0.0, z) - ys * z))
    out = dict(value=float(value), seconds=seconds, loss_seconds=loss_seconds, baseline_rss=baseline, peak_rss=peak, samples=len(samples),
               subsample_rows=m, subsample_grad_error=float(np.max(np.abs(sub_g - want_g)) / np.max(np.abs(want_g))),
               subsample_value_error=abs(float(sub_value) - want_value) / abs(want_value), chunks=X.numblocks[0])
    if verify_full:                                  # a NumPy loop over the chunk files, one in memory at a time
        total, total_value = np.zeros(meta["features"]), 0.0
        for i in range(X.numblocks[0]):
            Xi, yi = np.load(folder / "X" / f"{i}.npy"), np.load(folder / "y" / f"{i}.npy")
            zi = Xi @ wn
            total += Xi.T @ (1.0 / (1.0 + np.exp(-zi)) - yi)
            total_value += float(np.sum(np.logaddexp(0.0, zi) - yi * zi))
            del Xi
        total /= meta["rows"]
        out["full_grad_error"] = float(np.max(np.abs(g - total)) / np.max(np.abs(total)))
        out["full_value_error"] = abs(float(value) - total_value / meta["rows"]) / abs(total_value / meta["rows"])
    return out


def write_module(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from symbackprop import parse_formula
    from symbackprop.emit import emit_module
    path.write_text(emit_module(parse_formula(FORMULA, SHAPES), wrt=["w"], batch=["a", "y"], target="array-api"),
                    encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="folder for the data (created; reused when the data is there)")
    ap.add_argument("--size", help="bytes of data (X and y), e.g. 36G (default: 1.5 × RAM)")
    ap.add_argument("--features", type=int, default=100, help="columns of X (default 100)")
    ap.add_argument("--chunk", default="512M", help="bytes per chunk of rows of X (default 512M)")
    ap.add_argument("--workers", type=int, default=2, help="threads of Dask's scheduler (default 2)")
    ap.add_argument("--subsample", type=int, default=100_000, help="rows of the in-memory check (default 100000)")
    ap.add_argument("--verify-full", action="store_true", help="also check the full gradient with a NumPy loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", action="store_true", help="delete the data afterwards")
    ap.add_argument("--_measure", help=argparse.SUPPRESS)     # the child process: module path
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    if args._measure:
        out = measure(folder, Path(args._measure), args.workers, args.subsample, args.verify_full)
        print(json.dumps(out))
        return 0

    ram = total_ram()
    size = parse_bytes(args.size) if args.size else math.ceil(1.5 * ram)
    chunk = parse_bytes(args.chunk)
    n = args.features
    rows = rows_for(size, n)
    chunk_rows = max(1, min(rows, chunk // (8 * n)))
    print(f"load average {os.getloadavg()}")
    print(f"RAM {gib(ram)}; data {gib(rows * 8 * (n + 1))} = {rows:,} rows × {n} features (+ labels), "
          f"{rows * 8 * (n + 1) / ram:.2f} × RAM")
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta != {"rows": rows, "features": n, "chunk_rows": chunk_rows, "seed": args.seed}:
        if folder.exists() and any(folder.iterdir()) and not meta_path.exists():
            print(f"error: {folder} exists, is not empty and holds no data of this script; pick another --dir",
                  file=sys.stderr)
            return 2
        free = shutil.disk_usage(folder.parent if not folder.exists() else folder).free
        if free < rows * 8 * (n + 1) * 1.05:
            print(f"error: {gib(free)} free on the disk of {folder}, the data needs {gib(rows * 8 * (n + 1))}; "
                  f"pick another --dir or a smaller --size", file=sys.stderr)
            return 2
        shutil.rmtree(folder / "X", ignore_errors=True)
        shutil.rmtree(folder / "y", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        prepare(folder, rows, n, chunk_rows, args.workers, args.seed)
        print(f"wrote the data to {folder} in {time.perf_counter() - t:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / "logistic_array_api.py"
        write_module(module)
        cmd = [sys.executable, __file__, "--dir", str(folder), "--workers", str(args.workers),
               "--subsample", str(args.subsample), "--_measure", str(module)] + ["--verify-full"] * args.verify_full
        r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    out = json.loads(r.stdout.strip().splitlines()[-1])
    budget = args.workers * chunk_rows * n * 8
    print(f"chunks {out['chunks']} of {chunk_rows:,} rows ({gib(chunk_rows * n * 8)}); {args.workers} workers: "
          f"chunk budget {gib(budget)}")
    print(f"gradient over every row in {out['seconds']:.1f} s (grad()), then the mean loss {out['value']:.6f} in "
          f"{out['loss_seconds']:.1f} s (forward())")
    print(f"peak RSS {gib(out['peak_rss'])} = {out['peak_rss'] / budget:.2f} × the chunk budget "
          f"(baseline {gib(out['baseline_rss'])}, peak above it {gib(out['peak_rss'] - out['baseline_rss'])}; "
          f"{out['samples']} samples)")
    print(f"subsample of {out['subsample_rows']:,} rows, out of core vs in memory: gradient "
          f"{out['subsample_grad_error']:.1e}, loss {out['subsample_value_error']:.1e} (relative)")
    ok = out["subsample_grad_error"] <= 1e-10 and out["subsample_value_error"] <= 1e-10
    if "full_grad_error" in out:
        print(f"full gradient vs a NumPy loop over the chunk files: {out['full_grad_error']:.1e}, "
              f"loss {out['full_value_error']:.1e} (relative)")
        ok = ok and out["full_grad_error"] <= 1e-10 and out["full_value_error"] <= 1e-10
    print(f"peak RSS below 2 × the chunk budget: {'yes' if out['peak_rss'] < 2 * budget else 'NO'}; "
          f"data ≥ 1.5 × RAM: {'yes' if rows * 8 * (n + 1) >= 1.5 * ram else 'no'}; "
          f"agreement to 1e-10: {'yes' if ok else 'NO'}")
    print(f"load average {os.getloadavg()}")
    if args.clean:
        shutil.rmtree(folder)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
