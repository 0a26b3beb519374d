"""A checker's results: the verdict on one claim, and the counterexample that shows it wrong."""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from .check_support import (
    array_text,
    json_array,
)

STATUS_TEXT = {"correct": "correct", "transposed": "correct up to transpose", "wrong": "wrong",
               "malformed": "malformed"}
EXIT_CODES = {"correct": 0, "transposed": 0, "wrong": 1, "malformed": 2}

# ----- results -----

@dataclass
class Counterexample:
    """Concrete inputs at which the claim and the derivative differ."""
    dims: dict
    inputs: dict
    functions: dict
    claimed: object
    true: object

    def to_dict(self) -> dict:
        return {"dims": self.dims, "inputs": {k: json_array(v) for k, v in self.inputs.items()},
                "functions": self.functions, "claimed": json_array(self.claimed), "true": json_array(self.true)}

    def lines(self) -> list[str]:
        out = []
        if self.dims:
            out.append("dims: " + ", ".join(f"{k}={v}" for k, v in self.dims.items()))
        for k, v in self.inputs.items():
            out.append(f"{k} = {array_text(v, 2)}")
        for k, v in self.functions.items():
            out.append(f"{k} stands for {v}")
        out.append(f"claimed: {array_text(self.claimed, 4)}")
        out.append(f"true:    {array_text(self.true, 4)}")
        return out


@dataclass
class Verdict:
    """The outcome of checking one claimed derivative.

    `status` is 'correct', 'transposed' (correct up to transpose), 'wrong' or
    'malformed'; `diagnosis` names the mistake of a wrong claim ('shape',
    'ill-formed', 'factor', 'sign', 'zero', 'missing-factor', 'function-for-derivative',
    'missing-term', 'extra-term', 'undefined', 'symmetric-only', 'scalar-only', 'counterexample', and from
    check_hints: 'inner-for-outer' (r @ x.T for r xᵀ), 'size-factor' (a factor such as 1/d)).
    """
    wrt: str
    claim: str
    status: str
    summary: str
    details: list = field(default_factory=list)
    diagnosis: str | None = None
    objective: str = "ℓ"
    due_shape: str | None = None
    claim_shape: str | None = None
    layout: str | None = None
    gradient: str | None = None
    where: list = field(default_factory=list)
    factor: str | None = None
    method: str = ""
    symbolic: str = ""
    points: int = 0
    dims_tried: list = field(default_factory=list)
    counterexample: Counterexample | None = None
    line: int | None = None
    label: str | None = None
    expect: str | None = None
    show_counterexample: bool = False    # also for a diagnosis other than 'counterexample'

    @property
    def ok(self) -> bool:
        return self.status in ("correct", "transposed")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def verdict(self) -> str:
        return STATUS_TEXT[self.status]

    def headline(self) -> str:
        s = self.verdict
        if self.summary:
            s += f": {self.summary}"
        return s

    def text(self, where: bool = True, method: bool = True) -> str:
        lines = [f"∂{self.objective}/∂{self.wrt} = {self.claim}", f"  verdict: {self.headline()}"]
        lines += ["  " + d for d in self.details]
        if self.counterexample is not None and (self.diagnosis == "counterexample" or self.show_counterexample):
            lines.append("  counterexample:")
            lines += ["    " + l for l in self.counterexample.lines()]
        if self.gradient:
            lines.append(f"  the gradient (shaped like {self.wrt}): {self.gradient}")
            if self.where and where:
                lines.append("  where " + "; ".join(self.where))
        if self.points and method:
            lines.append("  " + (f"{self.symbolic}; " if self.symbolic else "") + self.method)
        return "\n".join(lines)

    def markdown(self) -> str:
        icon = {"correct": "✅", "transposed": "☑️", "wrong": "❌", "malformed": "⚠️"}[self.status]
        lines = [f"**∂{self.objective}/∂{self.wrt}** = `{self.claim}`: {icon} **{self.verdict}**"
                 + (f": {self.summary}" if self.summary else ""), ""]
        body = list(self.details)
        if self.counterexample is not None and (self.diagnosis == "counterexample" or self.show_counterexample):
            body += ["counterexample:"] + ["  " + l for l in self.counterexample.lines()]
        if self.gradient:
            body.append(f"the gradient (shaped like {self.wrt}): {self.gradient}")
            if self.where:
                body.append("where " + "; ".join(self.where))
        if self.points:
            body.append((f"{self.symbolic}; " if self.symbolic else "") + self.method)
        if body:
            lines += ["```", *body, "```"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("wrt", "claim", "status", "summary", "details", "diagnosis", "objective",
                                           "due_shape", "claim_shape", "layout", "gradient", "where", "factor", "method", "symbolic",
                                           "points", "dims_tried", "line", "label", "expect")}
        d["verdict"] = self.verdict
        d["counterexample"] = self.counterexample.to_dict() if self.counterexample else None
        return d

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_html_(self) -> str:
        color = {"correct": "#1a7f37", "transposed": "#1a7f37", "wrong": "#cf222e", "malformed": "#9a6700"}[self.status]
        body = self.text().split("\n", 2)
        rest = body[2] if len(body) > 2 else ""
        return (f"<div><code>∂{html.escape(self.objective)}/∂{html.escape(self.wrt)} = {html.escape(self.claim)}</code>"
                f"<br><b style='color:{color}'>{html.escape(self.verdict)}</b>"
                + (f": {html.escape(self.summary)}" if self.summary else "")
                + (f"<pre>{html.escape(rest)}</pre>" if rest else "") + "</div>")

    def __str__(self) -> str:
        return self.text()
