"""A class at a time: every submission in a folder graded against one problem, in parallel, into a gradebook
(CSV or JSON) and one feedback file per student, all written at once (a folder built aside, then moved into
place, so nothing is ever half-written).

    >>> from symbackprop.grading import grade_folder
    >>> book = grade_folder("problem.yaml", "submissions/")        # doctest: +SKIP
    >>> book.write("grades/", gradebook="csv", feedback="md")       # doctest: +SKIP
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .errors import SymbackpropError
from . import homework
from .homework import HOMEWORK_SUFFIXES, HomeworkError, ProblemSpec, build_problem, grade_file, read_problem_file

GRADEBOOK_FORMATS = ("csv", "json")
FEEDBACK_FORMATS = {"md": ".md", "html": ".html", "text": ".txt", "json": ".json"}
#: Folders with more files than this are refused (a clean error).
MAX_SUBMISSIONS = 100_000


@dataclass
class Submission:
    """One student's result: a graded report, or the message that says why the file could not be graded."""
    student: str
    file: str
    status: str                       # graded | unreadable | internal error
    record: dict = field(default_factory=dict)
    feedback: str = ""
    message: str = ""


@dataclass
class Gradebook:
    spec: ProblemSpec
    layout: str | None
    submissions: list
    seconds: float = 0.0
    jobs: int = 1
    feedback: str = "md"

    @property
    def exit_code(self) -> int:
        """0 when every file was graded, 2 when some could not be read, 3 on an internal error."""
        if any(s.status == "internal error" for s in self.submissions):
            return 3
        return 2 if any(s.status != "graded" for s in self.submissions) else 0

    def summary(self, timing: bool = False) -> str:
        n = len(self.submissions)
        graded = [s for s in self.submissions if s.status == "graded"]
        bad = n - len(graded)
        mean = sum(s.record["score"] for s in graded) / len(graded) if graded else 0.0
        rate = f", {n / self.seconds:.1f} submissions/s on {self.jobs} worker{'s' * (self.jobs != 1)}" \
            if self.seconds > 0 else ""
        return (f"{n} submission{'s' * (n != 1)}: {len(graded)} graded (mean score {mean:.0%}), {bad} unreadable"
                + (f" ({self.seconds:.1f} s{rate})" if timing else "") + ".")

    def columns(self) -> list[str]:
        return (["student", "file", "status", "score", "points", "max_points", "correct", "correct_up_to_transpose",
                 "wrong", "unreadable_lines", "unanswered"]
                + [f"d/d{w}" for w in self.spec.wrt] + ["message", "feedback"])

    def rows(self, feedback_names: list) -> list[dict]:
        out = []
        for s, fb in zip(self.submissions, feedback_names):
            r = s.record
            row = {"student": s.student, "file": s.file, "status": s.status, "message": s.message,
                   "feedback": fb}
            if s.status == "graded":
                c = r["counts"]
                row.update(score=f"{r['score']:.4g}", points=r["points"], max_points=r["max_points"],
                           correct=c["correct"], correct_up_to_transpose=c["correct up to transpose"],
                           wrong=c["wrong"], unreadable_lines=c["malformed"], unanswered=" ".join(r["unanswered"]))
                for w in self.spec.wrt:
                    row[f"d/d{w}"] = r["final"].get(w, "not answered")
            out.append(row)
        return out

    def csv(self, feedback_names: list) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
        w.writeheader()
        for row in self.rows(feedback_names):
            w.writerow({k: _cell(v) for k, v in row.items()})
        return buf.getvalue()

    def json(self, feedback_names: list) -> str:
        return json.dumps({"problem": self.spec.to_dict(), "layout": self.layout, "summary": self.summary(),
                           "submissions": [{**row, "report": s.record or None}
                                           for row, s in zip(self.rows(feedback_names), self.submissions)]},
                          indent=2, ensure_ascii=False, default=str)

    def write(self, out: str, gradebook: str = "csv") -> list[str]:
        """Write gradebook.<csv|json> and feedback/<student>.<ext> into the folder `out`, atomically: they are
        written into a new folder beside it, which then takes its place. An existing `out` is replaced only when
        it is empty or holds an earlier gradebook. Returns the paths written, relative to `out`."""
        out = os.path.abspath(out)
        parent = os.path.dirname(out)
        if not os.path.isdir(parent):
            raise SymbackpropError(f"the folder {parent} does not exist", hint="create it first, or write elsewhere")
        if os.path.exists(out) and not _replaceable(out):
            raise SymbackpropError(f"{out} exists and is not a gradebook folder written by symbackprop grade",
                                   hint="give --out a new folder (it is created), an empty one, or an earlier "
                                        "gradebook folder")
        ext = FEEDBACK_FORMATS[self.feedback]
        names = _feedback_names([s.student for s in self.submissions], ext)
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".", dir=parent)
        written = []
        try:
            os.mkdir(os.path.join(tmp, "feedback"))
            for s, rel in zip(self.submissions, names):
                with open(os.path.join(tmp, rel), "w", encoding="utf-8", newline="\n") as f:
                    f.write(s.feedback)
                written.append(rel)
            book = f"gradebook.{gradebook}"
            with open(os.path.join(tmp, book), "w", encoding="utf-8", newline="\n") as f:
                f.write(self.csv(names) if gradebook == "csv" else self.json(names))
            written.insert(0, book)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o777 & ~mask)
            _swap_into_place(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return written


def _cell(v) -> str:
    """A CSV cell that a spreadsheet shows as text (a leading = + - @ would make it a formula)."""
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def _feedback_names(students: list[str], ext: str) -> list[str]:
    """feedback/<student><ext>, one per submission (alice.md and alice.tex: feedback/alice.md, feedback/alice-2.md)."""
    out, used = [], set()
    for s in students:
        name = os.path.join("feedback", s + ext)
        k = 2
        while name.lower() in used:
            name = os.path.join("feedback", f"{s}-{k}{ext}")
            k += 1
        used.add(name.lower())
        out.append(name)
    return out


def _replaceable(out: str) -> bool:
    if not os.path.isdir(out) or os.path.islink(out):
        return False
    entries = set(os.listdir(out))
    return not entries or (entries <= {"gradebook.csv", "gradebook.json", "feedback"}
                           and bool(entries & {"gradebook.csv", "gradebook.json"}))


def _swap_into_place(tmp: str, out: str) -> None:
    if not os.path.exists(out):
        os.rename(tmp, out)
        return
    old = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".old.", dir=os.path.dirname(out))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ----- grading, in worker processes -----

_WORKER: dict = {}


def _init_worker(spec: ProblemSpec, layout, notation, feedback="md", cache=True) -> None:
    """Parse the problem and derive the asked derivatives once per worker."""
    _WORKER.clear()
    if not cache:
        homework.VERDICT_CACHE = 0
    try:
        problem = build_problem(spec)
        for w in spec.wrt:
            problem.truth(w)
        _WORKER.update(spec=spec, problem=problem, layout=layout, notation=notation, feedback=feedback)
    except SymbackpropError as e:                   # the parent built it first, so this is not expected
        _WORKER.update(error=e.format())


def _grade_one(path: str) -> Submission:
    student = os.path.splitext(os.path.basename(path))[0]
    if "error" in _WORKER:
        return Submission(student, path, "internal error", message=_WORKER["error"])
    try:
        if not path.lower().endswith(HOMEWORK_SUFFIXES):
            raise HomeworkError(f"{os.path.basename(path)} is not a homework file",
                                hint="submissions are Markdown (.md) or LaTeX (.tex) files")
        report = grade_file(path, spec=_WORKER["spec"], problem=_WORKER["problem"], layout=_WORKER["layout"],
                            notation=_WORKER["notation"])
    except SymbackpropError as e:
        status = "unreadable" if e.exit_code == 2 else "internal error"
        msg = e.format()
        return Submission(student, path, status, message=msg.split("\n")[0].removeprefix("error: "),
                          feedback=_error_feedback(student, path, msg))
    except Exception as e:                           # a bug: reported for this file, the batch goes on
        msg = f"internal error: {type(e).__name__}: {e}"
        return Submission(student, path, "internal error", message=msg, feedback=_error_feedback(student, path, msg))
    record = report.to_dict()
    record["final"] = {w: ln.grade for w, ln in report.final_lines().items()}
    fmt = _WORKER["feedback"]
    return Submission(student, path, "graded", record=record,
                      feedback=report.render(fmt) + ("" if fmt == "html" else "\n"))


def _error_feedback(student: str, path: str, msg: str) -> str:
    fmt = _WORKER.get("feedback", "md")
    if fmt == "md":
        return f"### {student}\n\n```\n{msg}\n```\n"
    if fmt == "html":
        return _html_error(student, msg)
    if fmt == "json":
        return json.dumps({"file": path, "error": msg}, ensure_ascii=False, indent=2) + "\n"
    return msg + "\n"


def _html_error(student: str, msg: str) -> str:
    import html
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(student)}</title></head><body>"
            f"<h3>{html.escape(student)}</h3><pre>{html.escape(msg)}</pre></body></html>\n")


def submission_files(folder: str) -> list[str]:
    """The submissions in a folder: its regular files, hidden ones excluded, sorted by name."""
    if not os.path.isdir(folder):
        raise SymbackpropError(f"{folder} is not a folder" if os.path.exists(folder) else f"no such folder: {folder}",
                               hint="give the folder holding one file per student")
    files = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            files.append(entry.path)
            if len(files) > MAX_SUBMISSIONS:
                raise SymbackpropError(f"{folder} holds more than {MAX_SUBMISSIONS} files")
    if not files:
        raise SymbackpropError(f"{folder} holds no submissions", hint="put one .md or .tex file per student in it")
    return sorted(files)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                           # not on Linux
        return max(1, os.cpu_count() or 1)


def grade_folder(problem, folder: str, *, layout: str | None = None, notation: str | None = None,
                 jobs: int | None = None, feedback: str = "md", cache: bool = True) -> Gradebook:
    """Grade every submission in `folder` against `problem` (a PROBLEM.yaml path or a ProblemSpec).

    cache=False checks every line afresh, also lines identical to one already checked (for measurements)."""
    spec = read_problem_file(problem) if isinstance(problem, str) else problem
    build_problem(spec)                              # a bad problem stops here, before any worker starts
    files = submission_files(folder)
    layout = layout or spec.layout
    notation = notation or spec.notation
    jobs = max(1, min(jobs or default_jobs(), len(files)))
    start = time.perf_counter()
    if jobs == 1:
        saved = homework.VERDICT_CACHE
        try:
            _init_worker(spec, layout, notation, feedback, cache)
            results = [_grade_one(f) for f in files]
        finally:
            homework.VERDICT_CACHE = saved
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                                 initargs=(spec, layout, notation, feedback, cache)) as pool:
            results = list(pool.map(_grade_one, files, chunksize=max(1, len(files) // (4 * jobs))))
    seconds = time.perf_counter() - start
    return Gradebook(spec, layout, results, seconds, jobs, feedback)
