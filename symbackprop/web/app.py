"""The Starlette application: the page (three panels: Derive, Check, ReLU), its fragments for live
updates, the JSON API under /api/, static files, and the safety layers around them (body limit,
security headers with a per-request CSP nonce, the worker pool's time limits and queue)."""
from __future__ import annotations

import contextlib
import json
import secrets
import urllib.parse
from dataclasses import asdict
from pathlib import Path

import jinja2

from .limits import MAX_BODY_CEILING, Limits
from .pool import PoolError, WorkerPool
from .tasks import EXAMPLE, RELU_MODES

HERE = Path(__file__).resolve().parent


#: Request fields the page and the API read (anything else in a request is ignored).
TEXT_FIELDS = ("formula", "shapes", "elementwise", "functions", "wrt", "layout", "notation", "rankdir", "batch",
               "dtype", "target", "seed", "lets", "claim", "width", "steps", "mode", "solution", "filename")
FLAG_FIELDS = ("hessian", "hvp", "backward", "check")
API_KINDS = {"derive": "derive", "graph": "graph", "codegen": "codegen", "check": "check",
             "check-solution": "solution", "train": "train"}


# ----- middleware -----

class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a request body over `max_body` bytes, by Content-Length or by counting what arrives."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _too_large(self.max_body)(scope, receive, send)
        total = 0
        started = False

        async def limited_receive():
            nonlocal total
            msg = await receive()
            if msg["type"] == "http.request":
                total += len(msg.get("body", b""))
                if total > self.max_body:
                    raise _TooLarge
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(self.max_body)(scope, receive, send)


def _too_large(limit: int):
    from starlette.responses import JSONResponse
    return JSONResponse({"error": {"kind": "body-too-large",
                                   "message": f"the request body is larger than the limit of {limit:,} bytes"}},
                        status_code=413, headers={"Connection": "close"})


class SecurityHeaders:
    """A per-request CSP nonce (scope state `csp_nonce`) and the security headers on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in ((b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
                             (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                             (b"cross-origin-opener-policy", b"same-origin")):
                    if k not in names:
                        headers.append((k, v))
                msg = {**msg, "headers": headers}
            await send(msg)

        await self.app(scope, receive, send_with_headers)


# ----- requests to payloads -----

def payload_from_params(params) -> dict:
    """Request fields from a query string or form (repeated `shape=NAME=DIMS` as on the command line)."""
    out = {}
    for k in TEXT_FIELDS:
        v = params.get(k)
        if isinstance(v, str):
            out[k] = v
    shapes = [s for s in params.getlist("shape") if isinstance(s, str)]
    if shapes:
        out["shapes"] = " ".join([out.get("shapes", "")] + shapes).strip()
    for k in FLAG_FIELDS:
        if k in params:
            out[k] = params.get(k) in ("1", "on", "true", "yes")
    return out


def payload_from_json(data) -> dict:
    """The known fields of a JSON object, each a scalar, a list of scalars, or an object of those."""
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    out = {k: v for k, v in data.items() if k in TEXT_FIELDS or k in FLAG_FIELDS}
    for k, v in out.items():
        if not _shallow(v, 2):
            raise ValueError(f"`{k}` must be a string, number, list of strings or object of strings")
    return out


def _shallow(v, depth: int) -> bool:
    if v is None or isinstance(v, (str, int, float, bool)):
        return True
    if depth == 0:
        return False
    if isinstance(v, list):
        return all(_shallow(x, depth - 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _shallow(x, depth - 1) for k, x in v.items())
    return False


def share_query(payload: dict, keys) -> str:
    pairs = []
    for k in keys:
        v = payload.get(k)
        if v in (None, "", False):
            continue
        pairs.append((k, "1" if v is True else str(v)))
    return urllib.parse.urlencode(pairs)


DERIVE_KEYS = ("formula", "shapes", "notation", "elementwise", "functions", "wrt", "layout", "target", "hessian",
               "hvp")
CHECK_KEYS = ("formula", "shapes", "notation", "elementwise", "functions", "lets", "wrt", "claim")
RELU_KEYS = ("width", "steps", "mode", "seed")


# ----- the application -----

def create_app(limits: Limits | None = None):
    """The Starlette application (starlette is imported here, so that this module imports without it)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    limits = limits or Limits()
    if limits.max_body > MAX_BODY_CEILING:
        raise ValueError(f"max_body may be at most {MAX_BODY_CEILING} bytes (uploads are kept in memory)")
    pool = WorkerPool(limits.workers, limits.queue, limits.queue_timeout, warm=limits.warm, spares=limits.spares)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)

    inflight: dict[str, int] = {}

    async def compute(kind: str, payload: dict, client: str | None = None) -> tuple[int, dict]:
        """(status, body): the task's result or a uniform {"error": {...}}. With `limits.per_client`, one
        client address may have at most that many requests running or waiting (429 beyond)."""
        if limits.per_client and client is not None:
            if inflight.get(client, 0) >= limits.per_client:
                return 429, {"error": {"kind": "busy", "retry_after": 1, "message":
                                       f"you already have {limits.per_client} requests running; wait for them"}}
            inflight[client] = inflight.get(client, 0) + 1
            try:
                return await compute(kind, payload)
            finally:
                inflight[client] -= 1
                if not inflight[client]:
                    del inflight[client]
        limit = limits.relu_time_limit if kind == "train" else limits.time_limit
        if kind == "train":
            payload = {**payload, "max_steps": limits.relu_max_steps, "max_width": limits.relu_max_width}
        try:
            answer = await pool.run(kind, payload, limit)
        except PoolError as e:
            kinds = {429: "busy", 503: "unavailable", 422: "time-limit", 500: "worker-died"}
            return e.status, {"error": {"kind": kinds.get(e.status, "error"), "message": e.message,
                                        "retry_after": e.retry_after}}
        if answer["status"] == 200:
            return 200, {**answer["result"], "seconds": round(answer.get("seconds", 0.0), 4)}
        return answer["status"], {"error": answer["error"]}

    def client_of(request) -> str | None:
        return request.client.host if request.client else None

    def headers_for(status: int, body: dict) -> dict:
        ra = body.get("error", {}).get("retry_after") if isinstance(body.get("error"), dict) else None
        return {"Retry-After": str(ra)} if ra else {}

    # ----- JSON API -----

    async def api(request: Request) -> Response:
        name = request.path_params["name"]
        kind = API_KINDS.get(name)
        if kind is None:
            return JSONResponse({"error": {"kind": "not-found", "message": f"no API endpoint /api/{name}",
                                           "hint": "endpoints: " + ", ".join(API_KINDS)}}, status_code=404)
        try:
            payload = await _read_payload(request, kind)
        except ValueError as e:
            return JSONResponse({"error": {"kind": "bad-request", "message": str(e)}}, status_code=400)
        status, body = await compute(kind, payload, client_of(request))
        headers = {"Cache-Control": "no-store", **headers_for(status, body)}
        if kind == "codegen" and status == 200 and request.query_params.get("download") in ("1", "true"):
            return Response(body["module"], media_type="text/x-python; charset=utf-8",
                            headers={**headers, "Content-Disposition": 'attachment; filename="grad.py"'})
        return JSONResponse(body, status_code=status, headers=headers)

    async def _read_payload(request: Request, kind: str) -> dict:
        if request.method == "GET":
            return payload_from_params(request.query_params)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or not ctype:
            raw = await request.body()
            try:
                data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise ValueError(f"the body is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
            return payload_from_json(data)
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return await _form_payload(request)
        if ctype in ("text/yaml", "application/yaml", "application/x-yaml", "text/plain") and kind == "solution":
            raw = await request.body()
            try:
                return {"solution": raw.decode("utf-8")}
            except UnicodeDecodeError:
                raise ValueError("the worked-solution file is not UTF-8 text") from None
        raise ValueError(f"unsupported Content-Type {ctype!r}: send JSON, a form, or (check-solution) YAML")

    async def _form_payload(request: Request) -> dict:
        try:
            form = await request.form(max_files=1, max_fields=40, max_part_size=limits.max_body)
        except _TooLarge:
            raise
        except Exception as e:                       # python-multipart's errors: a malformed form
            raise ValueError(f"the form could not be read ({type(e).__name__})") from None
        payload = payload_from_params(form)
        upload = form.get("solution_file")
        if upload is not None and not isinstance(upload, str):
            data = await upload.read()
            await upload.close()
            if data.strip():
                try:
                    payload["solution"] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("the worked-solution file is not UTF-8 text") from None
                payload["filename"] = (upload.filename or "solution.yaml")[:200]
        return payload

    # ----- the page -----

    def page(request: Request, template: str, status: int = 200, **context) -> Response:
        fragment = request.query_params.get("fragment") == "1"
        ctx = dict(nonce=request.state.csp_nonce, limits=limits, relu_modes=RELU_MODES, example=EXAMPLE, **context)
        name = f"{template}_results.html" if fragment else f"{template}.html"
        html = env.get_template(name).render(**ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    async def page_payload(request: Request) -> tuple[dict, bool]:
        """(fields, submitted): GET query or POST form."""
        if request.method == "POST":
            try:
                return await _form_payload(request), True
            except ValueError as e:
                return {"_form_error": str(e)}, True
        params = request.query_params
        return payload_from_params(params), any(k in params for k in TEXT_FIELDS + FLAG_FIELDS + ("shape",))

    async def derive_page(request: Request) -> Response:
        form, submitted = await page_payload(request)
        if not submitted:
            form = {"formula": EXAMPLE["formula"], "shapes": " ".join(EXAMPLE["shapes"])}
        form.setdefault("layout", "gradient")
        status, result, error = 200, None, form.pop("_form_error", None)
        if error is None and form.get("formula", "").strip():
            status, body = await compute("derive", {**form, "html": True, "graphs": True, "module": True},
                                         client_of(request))
            result, error = (body, None) if status == 200 else (None, body["error"])
        elif error is not None:
            status, error = 400, {"kind": "bad-request", "message": error, "formatted": f"error: {error}"}
        q = share_query(form, DERIVE_KEYS)
        return page(request, "derive", status, panel="derive", form=form, result=result, error=error,
                    share=("?" + q) if q else "", download=("api/codegen?download=1&" + q) if q else "")

    async def check_page(request: Request) -> Response:
        form, submitted = await page_payload(request)
        if not submitted:
            form = {"formula": EXAMPLE["formula"], "shapes": " ".join(EXAMPLE["shapes"]),
                    "lets": "x1 = W1 @ x + b\nx4 = W2 @ relu(x1) - y", "wrt": "W1", "claim": "outer(W2.T @ x4, x)"}
        status, result, report, error = 200, None, None, form.pop("_form_error", None)
        if error is not None:
            status, error = 400, {"kind": "bad-request", "message": error, "formatted": f"error: {error}"}
        elif form.get("solution", "").strip():
            status, body = await compute("solution", form, client_of(request))
            report, error = (body, None) if status == 200 else (None, body["error"])
        elif submitted and (form.get("claim", "").strip() or request.method == "POST"):
            status, body = await compute("check", form, client_of(request))
            result, error = (body, None) if status == 200 else (None, body["error"])
        q = share_query(form, CHECK_KEYS)
        return page(request, "check", status, panel="check", form=form, result=result, report=report, error=error,
                    share=("check?" + q) if q else "check")

    async def relu_page(request: Request) -> Response:
        form, submitted = await page_payload(request)
        form = {k: form[k] for k in RELU_KEYS if k in form} | {"_form_error": form.get("_form_error")}
        status, result, error = 200, None, form.pop("_form_error")
        if error is not None:
            status, error = 400, {"kind": "bad-request", "message": error, "formatted": f"error: {error}"}
        elif submitted:
            status, body = await compute("train", form, client_of(request))
            result, error = (body, None) if status == 200 else (None, body["error"])
        q = share_query(form, RELU_KEYS)
        return page(request, "train", status, panel="train", form=form, result=result, error=error,
                    share=("relu?" + q) if q else "relu?")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": pool.alive > 0, "workers": pool.alive, "spares": pool.spare, "full": pool.full,
                             "busy": pool.busy, "waiting": pool.waiting,
                             "stats": pool.stats, "limits": asdict(limits)}, headers={"Cache-Control": "no-store"})

    async def not_found(request: Request, exc) -> Response:
        return PlainTextResponse("not found", status_code=404)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await pool.start()
        try:
            yield
        finally:
            await pool.close()

    routes = [
        Route("/", derive_page, methods=["GET", "POST"]),
        Route("/check", check_page, methods=["GET", "POST"]),
        Route("/relu", relu_page, methods=["GET", "POST"]),
        Route("/healthz", health),
        Route("/api/{name}", api, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.pool = pool
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_body=limits.max_body)
    app.add_middleware(SecurityHeaders)
    return app
