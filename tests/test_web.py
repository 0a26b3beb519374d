"""`symbackprop serve` over HTTP: the page, the JSON API, and hostile input (injection strings, oversized
bodies, 5,000 nested parentheses, slow formulas, malformed JSON), the time limit, the queue (429/503),
no file written, and a small bounded load test."""
from __future__ import annotations

import concurrent.futures
import importlib.util
import re
import time
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("latex2mathml")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")
with warnings.catch_warnings():                 # "use httpx2": starlette's notice, not ours
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient  # noqa: E402

from symbackprop.files import load_source  # noqa: E402
from symbackprop.web.app import create_app  # noqa: E402
from symbackprop.web.limits import Limits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HANDOUT = {"formula": "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2", "shapes": "W1=h,d W2=k,h x=d b=h y=k"}
#: 2,000 balanced terms: derives in several seconds, far past a 2 s limit.
SLOW_TERMS = 2000
TIME_LIMIT = 2.0


def slow_formula(n: int = SLOW_TERMS) -> str:
    terms = [f"sin(x{i % 50} * tanh(x{(i * 7) % 50} + {i}))" for i in range(n)]
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


@pytest.fixture(scope="module")
def client():
    app = create_app(Limits(workers=2, time_limit=TIME_LIMIT, queue=16, relu_max_steps=2000))
    with TestClient(app) as c:
        yield c


# ----- the page -----

def test_page_shows_the_handout_example_with_steps_graphs_and_module(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert "0.5 * norm(W2 @ relu(W1 @ x + b) - y)**2" in html
    assert html.count("<math") >= 10                               # gradients and steps typeset as MathML
    assert "Forward pass:" in html and "Backward pass" in html
    assert html.count("<svg") == 2                                  # forward and backward graphs, inline
    assert "def value_and_grad" in html
    assert "Checked against central finite differences" in html
    # the steps text carries shapes
    assert "∂ℓ/∂W1 = ∂ℓ/∂x1 xᵀ = (W2ᵀ x4 ⊙ relu'(x1)) xᵀ    [h×d]" in html.replace("&#39;", "'")


def test_csp_forbids_inline_script_without_the_nonce(client):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)[1]
    assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    scripts = re.findall(r"<script\b[^>]*>", r.text)
    assert scripts and all(f'nonce="{nonce}"' in s for s in scripts)
    assert client.get("/").headers["content-security-policy"] != csp          # a fresh nonce per response
    assert r.headers["x-content-type-options"] == "nosniff"


def test_shareable_url_carries_formula_shapes_and_options(client):
    q = {**HANDOUT, "wrt": "W1", "layout": "numerator", "hvp": "1"}
    r = client.get("/", params=q)
    assert r.status_code == 200
    share = re.search(r'id="share-link"[^>]*|href="([^"]*)" id="share-link"', r.text)
    href = re.search(r'<a href="([^"]*)" id="share-link"', r.text)[1].replace("&amp;", "&")
    again = client.get("/" + href)
    assert share and again.status_code == 200
    for field in ("formula", "shapes", "wrt"):
        assert f'value="{q[field]}"' in again.text or q[field] in again.text
    assert '<option value="numerator" selected>' in again.text
    assert 'name="hvp" value="1" checked' in again.text
    assert "Second order" in again.text


def test_math_notation(client):
    q = {"formula": r"\frac{1}{2}\|A x - b\|^2", "shapes": "A=m,n x=n b=m", "wrt": "x"}
    body = client.get("/api/derive", params=q).json()
    assert body["text"] == "∂ℓ/∂x = Aᵀ (A x − b)    [n]"
    r = client.get("/api/derive", params={**q, "notation": "numpy"})
    assert r.status_code == 400 and "LaTeX" in r.json()["error"]["message"]
    page = client.get("/", params={**q, "notation": "math"})
    assert page.status_code == 200 and '<option value="math" selected>' in page.text
    assert "notation=math" in re.search(r'<a href="([^"]*)" id="share-link"', page.text)[1]
    assert client.get("/api/derive", params={**q, "notation": "latex"}).status_code == 400


@pytest.mark.parametrize("formula, shapes, web, cli", [
    ("sum(W @ x)", "W=m,n x=m", "check the Shapes field", "check the shapes with --shape"),
    ("sum(Wz)", "W=m,n", "give z a shape: add z=… to Shapes", "give z a shape with --shape z=…"),
    ("sum(x)", "x=n yy=m", "remove it from Shapes", "remove that --shape"),
    ("sum(x)", "x", "e.g. W1=h,d", "e.g. --shape W1=h,d"),
    ("sum(x)", "x=1.5", "e.g. W1=h,d or x=3", "e.g. --shape W1=h,d or --shape x=3"),
    ("  ", "x=n", "with A=m,n x=n b=m in Shapes", "--shape A=m,n --shape x=n --shape b=m"),
    # the page's Elementwise functions and Scalar functions fields, where the command line has flags
    ("sum(foo(x))", "x=n", "add foo to Elementwise functions (applied entrywise) or to Scalar functions",
     "--elementwise foo (applied entrywise) or --function foo"),
])
def test_shape_hints_name_the_shapes_field_not_the_flag(client, formula, shapes, web, cli):
    """The page has a Shapes field, not a --shape flag: its hints say so; the command line keeps its own."""
    from symbackprop.cli import main
    from symbackprop.web.tasks import shape_specs
    r = client.get("/api/derive", params={"formula": formula, "shapes": shapes})
    assert r.status_code == 400
    error = r.json()["error"]
    assert web in error["hint"] and web in error["formatted"]
    assert "--" not in error["hint"] and "--" not in error["formatted"]
    if formula.strip():                                            # an empty page form shows the example
        page = client.get("/", params={"formula": formula, "shapes": shapes})
        assert page.status_code == 400 and web in page.text.replace("&#39;", "'") and "--shape" not in page.text
        assert "--elementwise" not in page.text
    argv = ["derive", *(a for s in shape_specs({"shapes": shapes}) for a in ("--shape", s)), formula]
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 2
    assert cli in err.getvalue() and web not in err.getvalue()


def test_form_post_works_without_javascript(client):
    r = client.post("/", data={"formula": "0.5 * norm(A @ x - b)**2", "shapes": "A=m,n x=n b=m", "wrt": "x"})
    assert r.status_code == 200
    assert "Aᵀ (A x − b)" in r.text or "Aᵀ x2" in r.text
    assert 'id="share-link"' in r.text


def test_fragment_is_the_results_only(client):
    r = client.get("/", params={**HANDOUT, "fragment": "1"})
    assert r.status_code == 200
    assert "<html" not in r.text and "<svg" in r.text


def test_check_page_shows_the_verdict_and_diagnosis(client):
    r = client.post("/check", data={**HANDOUT, "lets": "x1 = W1 @ x + b\nx4 = W2 @ relu(x1) - y",
                                    "wrt": "W1", "claim": "outer(W2.T @ x4, x)"})
    assert r.status_code == 200
    assert "verdict wrong" in r.text
    assert "the factor relu&#39;(x1) is missing" in r.text


def test_worked_solution_upload(client):
    data = (ROOT / "docs/solutions/common-mistakes.yaml").read_bytes()
    r = client.post("/check", files={"solution_file": ("common-mistakes.yaml", data, "text/yaml")})
    assert r.status_code == 200
    assert "Common mistakes: the two-layer network" in r.text
    rows = re.findall(r'<tr class="verdict-row (\w+)">', r.text)
    assert len(rows) > 5 and "correct" in rows and "wrong" in rows
    api = client.post("/api/check-solution", content=data, headers={"content-type": "text/yaml"})
    assert api.status_code == 200
    assert [v["status"] for v in api.json()["verdicts"]] == rows


def test_relu_panel(client):
    pytest.importorskip("matplotlib")
    r = client.get("/relu", params={"width": "5", "steps": "300"})
    assert r.status_code == 200
    assert r.text.count('src="data:image/png;base64,') == 2
    assert client.get("/relu", params={"width": "5", "steps": "999999"}).status_code == 400


# ----- the JSON API -----

def test_api_derive_matches_the_readme(client):
    r = client.post("/api/derive", json={**HANDOUT, "shapes": HANDOUT["shapes"].split()})
    assert r.status_code == 200
    body = r.json()
    assert "∂ℓ/∂W1 = (W2ᵀ x4 ⊙ relu'(x1)) xᵀ    [h×d]" in body["text"]
    assert body["gradients"]["W2"] == {"shape": ["k", "h"], "text": "x4 x2ᵀ", "latex": "x_{4} x_{2}^\\top",
                                       "numpy": "np.outer(x4, x2)"}
    assert all(c["passed"] == c["trials"] > 0 for c in body["check"].values())
    get = client.get("/api/derive", params=HANDOUT)
    assert get.json()["text"] == body["text"]
    as_dict = client.post("/api/derive", json={**HANDOUT, "shapes": {"W1": "h,d", "W2": ["k", "h"], "x": "d",
                                                                       "b": "h", "y": "k"}})
    assert as_dict.json()["text"] == body["text"]


def test_api_graph(client):
    r = client.post("/api/graph", json={**HANDOUT, "backward": True})
    assert r.status_code == 200
    body = r.json()
    assert body["svg"].startswith("<svg") and "digraph" in body["dot_source"] and body["nodes"] >= 10


def _central_differences(f, inputs, name, eps=1e-6):
    x = inputs[name]
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(**inputs)
        x[i] = old - eps
        down = f(**inputs)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def test_api_codegen_download_imports_and_is_right(client, tmp_path):
    r = client.get("/api/codegen", params={**HANDOUT, "download": "1"})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="grad.py"'
    path = tmp_path / "grad_web.py"
    path.write_bytes(r.content)
    spec = importlib.util.spec_from_file_location("grad_web", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(1)
    h, d, k = 4, 3, 2
    inputs = {"W1": rng.normal(size=(h, d)), "W2": rng.normal(size=(k, h)), "x": rng.normal(size=d),
              "b": rng.normal(size=h), "y": rng.normal(size=k)}
    value, grads = module.value_and_grad(**inputs)
    hidden = np.maximum(inputs["W1"] @ inputs["x"] + inputs["b"], 0)
    assert value == pytest.approx(0.5 * np.sum((inputs["W2"] @ hidden - inputs["y"]) ** 2))
    for name in inputs:
        fd = _central_differences(module.forward, {k_: v.copy() for k_, v in inputs.items()}, name)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5, atol=1e-7)
    assert client.post("/api/codegen", json=HANDOUT).json()["module"] == r.text     # deterministic


@pytest.mark.parametrize("target, library", [("array-api", "array_api_compat"), ("torch", "torch")])
def test_api_codegen_for_other_libraries(client, target, library):
    """`target` picks the module's library, as codegen --target does; its gradient is the NumPy module's."""
    pytest.importorskip(library)
    torch = pytest.importorskip("torch")
    body = client.post("/api/codegen", json={**HANDOUT, "target": target}).json()
    assert f"--target {target}" in body["command"] and f"import {library}\n" in body["module"]
    ours = load_source(body["module"], f"web_{target.replace('-', '_')}", keep=False)
    numpy_module = load_source(client.post("/api/codegen", json=HANDOUT).json()["module"], "web_numpy", keep=False)
    rng = np.random.default_rng(2)
    inputs = {"W1": rng.normal(size=(4, 3)), "W2": rng.normal(size=(2, 4)), "x": rng.normal(size=3),
              "b": rng.normal(size=4), "y": rng.normal(size=2)}
    value, grads = ours.value_and_grad(**{k: torch.asarray(v) for k, v in inputs.items()})
    want_value, want = numpy_module.value_and_grad(**inputs)
    assert float(value) == pytest.approx(want_value, rel=1e-12)
    for name in inputs:
        np.testing.assert_allclose(grads[name].numpy(), want[name], rtol=1e-12, atol=1e-14)
    page = client.get("/", params={**HANDOUT, "target": target}).text
    assert {"array-api": "Array API module", "torch": "PyTorch module"}[target] in page
    assert f'<option value="{target}" selected>' in page and f"target={target}" in page    # kept in the links


def test_api_codegen_refuses_an_unknown_target(client):
    r = client.post("/api/codegen", json={**HANDOUT, "target": "cuda"})
    assert r.status_code == 400
    assert "`target` must be one of numpy, array-api, torch" in r.json()["error"]["message"]


@pytest.mark.parametrize("endpoint, fields, web", [
    ("check", {"lets": ["x1 W1 @ x + b"], "wrt": "W1", "claim": "W1"}, "write NAME = EXPR, e.g. x1 = W1 @ x + b"),
    ("check", {"wrt": "W1", "claim": "outer(x9, x)"}, "Name intermediates in Named intermediates"),
    ("derive", {"hessian": "1", "wrt": "x,b"}, "put one name in With respect to (x), or tick HVP"),
])
def test_check_and_second_order_hints_name_the_fields(client, endpoint, fields, web):
    """Hints name the page's fields (Named intermediates, With respect to, HVP), not --let, --wrt, --hvp."""
    r = client.post(f"/api/{endpoint}", json={**HANDOUT, **fields})
    if endpoint == "derive":                         # the gradients are shown; the second-order panel says why not
        error = r.json()["second_order"]["error"]
        assert r.status_code == 200 and "the Hessian is taken with respect to one variable" in error
        assert web in error and "--" not in error, error
        return
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert web in error["hint"] and "--" not in error["hint"], error["hint"]


def test_api_check(client):
    r = client.post("/api/check", json={**HANDOUT, "lets": ["x1=W1 @ x + b", "x4=W2 @ relu(x1) - y"],
                                        "wrt": "W1", "claim": "outer(W2.T @ x4, x)"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "wrong" and body["diagnosis"] == "missing-factor"
    ok = client.post("/api/check", json={**HANDOUT, "wrt": "b",
                                         "claim": "W2.T @ (W2 @ relu(W1 @ x + b) - y) * relu'(W1 @ x + b)"})
    assert ok.json()["status"] == "correct"


# ----- hostile input -----

INJECTIONS = ['<script>alert(1)</script>', '"><script>alert(1)</script>', "' onmouseover='alert(1)",
              'a" onfocus="alert(1)" autofocus x="', "</textarea><script>alert(1)</script>",
              "<img src=x onerror=alert(1)>", "sum(x) # --><script>alert(1)</script>"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _assert_inert(html: str):
    """No markup from the input: every script is ours (src + nonce), no on* attribute, no injected element."""
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        if tag == "script":
            assert attrs.get("src") == "static/app.js" and attrs.get("nonce"), attrs
        assert tag != "img" or attrs.get("src", "").startswith("data:image/png"), attrs
    assert "<script>alert" not in html


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_show_as_text(client, text):
    for field in ("formula", "shapes", "wrt", "elementwise", "functions"):
        r = client.get("/", params={**HANDOUT, field: text})
        assert r.status_code in (200, 400)
        _assert_inert(r.text)
    for field in ("claim", "lets", "wrt"):
        r = client.post("/check", data={**HANDOUT, "wrt": "b", "claim": "x", field: text})
        _assert_inert(r.text)
    r = client.post("/api/derive", json={**HANDOUT, "formula": text})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")


def test_quote_breaking_value_stays_inside_its_attribute(client):
    r = client.get("/", params={**HANDOUT, "wrt": 'a" onfocus="alert(1)'})
    assert 'value="a&#34; onfocus=&#34;alert(1)"' in r.text


def test_comment_in_formula_cannot_reach_the_svg(client):
    r = client.get("/", params={"formula": "sum(x) # --><script>alert(1)</script>", "shapes": "x=n"})
    _assert_inert(r.text)


def test_oversized_bodies_get_413(client):
    big = {"formula": "x" + " + x" * 100_000}
    r = client.post("/api/derive", json=big)
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]["message"]

    def chunks():                                   # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"a" * 10_000
    r = client.post("/api/derive", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/check", files={"solution_file": ("big.yaml", b"a: 1\n" * 100_000, "text/yaml")})
    assert r.status_code == 413


def test_five_thousand_nested_parentheses(client):
    f = "(" * 5000 + "x" + ")" * 5000
    r = client.post("/api/derive", json={"formula": f})
    assert r.status_code == 400
    assert "nested" in r.json()["error"]["message"]
    page = client.get("/", params={"formula": f})
    assert page.status_code == 400 and "nested" in page.text


@pytest.mark.parametrize("body,why", [(b"{not json", "not valid JSON"), (b'{"formula": "x"', "not valid JSON"),
                                      (b"[1, 2]", "JSON object"), (b"\xff\xfe", "not valid JSON"),
                                      (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
                                      (b'{"formula": 5}', "must be a string"),
                                      (b'{"formula": "x", "shapes": 7}', "shapes"),
                                      (b'{"formula": "x", "shapes": ' + b"[" * 900 + b"]" * 900 + b"}", "shapes")])
def test_malformed_json(client, body, why):
    r = client.post("/api/derive", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413)
    if r.status_code == 400:
        assert why in r.json()["error"]["message"]


def test_unknown_endpoint_and_content_type(client):
    assert client.get("/api/eval").status_code == 404
    r = client.post("/api/derive", content=b"formula=x", headers={"content-type": "application/xml"})
    assert r.status_code == 400


def wait_full(client, timeout=120):
    """Until every worker and spare is up again (a stopped worker is refilled in the background)."""
    deadline = time.monotonic() + timeout
    while not client.get("/healthz").json()["full"]:
        assert time.monotonic() < deadline, "the pool did not refill"
        time.sleep(0.2)


def test_slow_formula_hits_the_time_limit_and_the_server_recovers(client):
    wait_full(client)
    t = time.monotonic()
    r = client.post("/api/derive", json={"formula": slow_formula()})
    took = time.monotonic() - t
    assert r.status_code == 422 and r.json()["error"]["kind"] == "time-limit", r.text
    assert took < TIME_LIMIT + 3
    assert client.post("/api/derive", json=HANDOUT).status_code == 200
    health = client.get("/healthz").json()
    assert health["stats"]["time_limit"] >= 1


def test_a_slow_request_does_not_hold_up_a_simple_one(client):
    wait_full(client)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(client.post, "/api/derive", json={"formula": slow_formula()})
        time.sleep(0.3)
        t = time.monotonic()
        simple = ex.submit(client.post, "/api/derive", json={"formula": "x @ x", "shapes": "x=n"}).result()
        simple_took = time.monotonic() - t
        assert simple.status_code == 200
        assert simple_took < TIME_LIMIT
        assert slow.result().status_code == 422


def test_full_queue_gets_429_and_a_long_wait_503():
    app = create_app(Limits(workers=1, queue=1, queue_timeout=1.0, time_limit=TIME_LIMIT, warm=False))
    with TestClient(app) as c, concurrent.futures.ThreadPoolExecutor(4) as ex:
        c.post("/api/derive", json={"formula": "x @ x", "shapes": "x=n"})      # the worker is up
        slow = ex.submit(c.post, "/api/derive", json={"formula": slow_formula()})
        time.sleep(0.3)
        waiting = ex.submit(c.post, "/api/derive", json={"formula": "x * 2"})
        time.sleep(0.2)
        full = c.post("/api/derive", json={"formula": "x * 3"})
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert full.json()["error"]["kind"] == "busy"
        assert waiting.result().status_code == 503                 # waited more than queue_timeout
        assert slow.result().status_code == 422


def test_per_client_limit():
    app = create_app(Limits(workers=2, per_client=1, time_limit=TIME_LIMIT, warm=False))
    with TestClient(app) as c, concurrent.futures.ThreadPoolExecutor(2) as ex:
        c.post("/api/derive", json={"formula": "x @ x", "shapes": "x=n"})      # the workers are up
        slow = ex.submit(c.post, "/api/derive", json={"formula": slow_formula()})
        time.sleep(0.3)
        second = c.post("/api/derive", json={"formula": "x * 2"})
        assert second.status_code == 429 and "already have 1" in second.json()["error"]["message"]
        assert slow.result().status_code == 422
        assert c.post("/api/derive", json={"formula": "x * 2"}).status_code == 200


def test_no_file_is_written(tmp_path):
    from symbackprop.web.launch import background_server
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    with background_server("--workers", "1", env={"TMPDIR": str(tmp)}, cwd=str(cwd)) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/", params=HANDOUT).status_code == 200
            assert c.get("/api/codegen", params={**HANDOUT, "download": "1"}).status_code == 200
            assert c.post("/check", files={"solution_file": (
                "s.yaml", (ROOT / "docs/solutions/handout-2d.yaml").read_bytes(), "text/yaml")}).status_code in (200,)
    assert list(tmp.iterdir()) == [] and list(cwd.iterdir()) == []


def test_serve_command_line():
    from symbackprop.cli import main
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    assert main(["serve", "--max-body", "99999999"]) == 2


def test_serve_without_the_web_extra_names_it():
    import subprocess
    import sys
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in {'starlette', 'uvicorn'}:\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "from symbackprop.cli import main\n"
            "sys.exit(main(['serve']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "the optional `web` extra" in r.stderr and "pip install 'symbackprop[web]'" in r.stderr


# ----- a small bounded load test (bench/web_load.py runs the full one) -----

def test_small_load():
    spec = importlib.util.spec_from_file_location("web_load", ROOT / "bench" / "web_load.py")
    web_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web_load)
    report = web_load.main(["--requests", "40", "--clients", "5", "--slow-every", "20", "--workers", "2",
                            "--time-limit", str(TIME_LIMIT), "--json"])
    assert report["errors"] == 0 and report["burst_errors"] == 0, report
    assert report["burst_429"] > 0 and report["burst_retry_after"]
    assert report["ok"] + report["time_limited"] + report["busy"] == 40
    assert report["slow_sent"] == 2 and report["time_limited"] >= 1
    assert report["simple_p50_s"] < TIME_LIMIT, report          # the max bound: bench/web_load.py, quiet machine
