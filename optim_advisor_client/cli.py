"""``optim-advisor``: advice, batch LR range tests, jobs, trials and keys from the command line.

    optim-advisor advise spec.yaml [--json]
    optim-advisor lr-find experiments.jsonl --out results/
    optim-advisor jobs list|show|watch|cancel ...
    optim-advisor trials submit|show ...
    optim-advisor keys ...            (key management, on the server's host: app.keys)

``--url`` / ``--api-key`` or ``$OPTIM_ADVISOR_URL`` / ``$OPTIM_ADVISOR_API_KEY``. Exit status: 0
ok, 1 a job failed (named), 2 bad input or an API error (the problem's fields and allowed ranges
are printed), 3 the service could not be reached. Imports neither torch nor numpy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app.schemas.job_results import RangeTestResult, ResultView, TrialsResult, read_result
from app.schemas.jobs import JobBatchResult, JobView
from optim_advisor_client.client import DEFAULT_URL, KEY_ENV, TERMINAL, URL_ENV, Client
from optim_advisor_client.errors import ApiError, ClientError, ConnectError, format_problem
from optim_advisor_client.progress import Bars

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input found before anything is sent (a file that does not parse)."""


# -- output ------------------------------------------------------------------------------------


def _clean(text: str, tty: bool) -> str:
    """No control characters in a log: whatever a server or a label says, it stays one line."""
    if tty:
        return text
    return "".join(ch if ch in "\n\t" or (ch.isprintable()) else "?" for ch in text)


class Out:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()

    def line(self, text: str = "") -> None:
        self.stream.write(_clean(text, self.tty) + "\n")

    def json(self, obj: Any) -> None:
        self.stream.write(json.dumps(obj, indent=2, ensure_ascii=not self.tty) + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[_clean(str(c if c is not None else ""), False).replace("\n", " ")
                  for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        widths = [min(w, 70) for w in widths]

        def fmt(row: Sequence[str]) -> str:
            return "  ".join(c[:w].ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

        self.line(fmt(list(headers)))
        self.line(fmt(["-" * w for w in widths]))
        for r in cells:
            self.line(fmt(r))


def _lr(x: float | None) -> str:
    return f"{x:.3g}" if x is not None else "-"


def _label(job: JobView) -> str:
    return job.labels.get("name") or job.labels.get("label") or ""


# -- input -------------------------------------------------------------------------------------


def load_spec(path: str) -> dict[str, Any]:
    """A JSON or YAML file (by extension; ``-`` reads JSON from stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml  # only this command needs it

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError or json.JSONDecodeError: both are bad input
        raise UsageError(f"{path}: not valid {'YAML' if path.endswith(('yaml', 'yml')) else 'JSON'}"
                         f": {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected an object at the top level, got "
                         f"{type(data).__name__}")
    return data


def load_jsonl(path: str) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc
    out: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n}: not valid JSON: {exc}") from exc
        if not isinstance(item, dict):
            raise UsageError(f"{path}:{n}: expected a JSON object per line")
        out.append(item)
    if not out:
        raise UsageError(f"{path}: no experiments (one JSON object per line)")
    return out


# -- commands ----------------------------------------------------------------------------------


def cmd_advise(c: Client, args: argparse.Namespace, out: Out) -> int:
    advice = c.advise(load_spec(args.spec))
    if args.json:
        out.json(advice.model_dump(mode="json"))
        return EXIT_OK
    out.line(f"optimizer {advice.optimizer.name}  lr {_lr(advice.optimizer.lr)}  weight decay "
             f"{advice.optimizer.weight_decay:g}  schedule {advice.schedule.name} "
             f"(warmup {advice.schedule.warmup_steps} of {advice.schedule.total_steps} steps)  "
             f"confidence {advice.confidence_label}")
    out.line()
    out.table(["field", "value", "rules", "why"],
              [(r.field, json.dumps(r.value) if not isinstance(r.value, str) else r.value,
                ", ".join(r.rule_ids), r.text) for r in advice.rationale])
    for w in advice.warnings:
        out.line(f"warning [{', '.join(w.rule_ids)}]: {w.text}")
    return EXIT_OK


def _experiment_key(item: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:16]


def _name(item: dict[str, Any], i: int) -> str:
    labels = item.get("labels") or {}
    return str(labels.get("name") or labels.get("label") or f"experiment-{i + 1}")


class StateFile:
    """Job ids already submitted, by experiment (a hash of its line): a rerun re-attaches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.jobs: dict[str, str] = json.loads(path.read_text())["jobs"]
        except (OSError, ValueError, KeyError, TypeError):
            self.jobs = {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"jobs": self.jobs}, indent=1))
        tmp.replace(self.path)


def _attach_or_submit(c: Client, items: list[dict[str, Any]], state: StateFile, out: Out
                      ) -> tuple[list[str | None], dict[int, str]]:
    """The job of each item (re-attached from the state file, else submitted as one batch) and
    the items refused, by index, with the reason."""
    keys = [_experiment_key(it) for it in items]
    ids: list[str | None] = [None] * len(items)
    for i, k in enumerate(keys):
        if k in state.jobs:
            try:
                c.job(state.jobs[k])
                ids[i] = state.jobs[k]
            except ApiError as exc:
                if exc.status != 404:
                    raise
    todo = [i for i, jid in enumerate(ids) if jid is None]
    refused: dict[int, str] = {}
    if len(todo) < len(items):
        out.line(f"re-attached to {len(items) - len(todo)} job(s) from {state.path}")
    if todo:
        try:
            results = c.range_test_batch([items[i] for i in todo]).items
        except ApiError as exc:  # none accepted: a problem document carrying the items
            if not exc.problem.get("items"):
                raise
            results = JobBatchResult.model_validate(
                {"succeeded": 0, "failed": len(exc.problem["items"]),
                 "items": exc.problem["items"]}).items
        for b in results:
            i = todo[b.index]
            if b.result is not None:
                ids[i] = b.result.id
                state.jobs[keys[i]] = b.result.id
            else:
                problem = b.problem.model_dump(exclude_none=True) if b.problem else {}
                refused[i] = format_problem(b.status, problem)
        state.save()
    return ids, refused


def _summary_row(name: str, job: JobView | None, view: ResultView | None,
                 error: str | None) -> dict[str, Any]:
    s = view.suggestions if isinstance(view, RangeTestResult) else None
    problem = (job.problem or {}) if job else {}
    return {
        "name": name, "job_id": job.id if job else None,
        "status": job.status if job else "refused",
        "recommended_lr": s.recommended if s else None,
        "confidence": s.confidence if s else None,
        "flags": ";".join(s.flags) if s else "",
        "reason": s.reason if s else None,
        "steepest": s.steepest if s else None, "valley": s.valley if s else None,
        "cycle_min_lr": s.cycle_min_lr if s else None,
        "cycle_max_lr": s.cycle_max_lr if s else None,
        "stop_reason": view.stop_reason if isinstance(view, RangeTestResult) else None,
        "error": error or problem.get("detail"),
    }


def cmd_lr_find(c: Client, args: argparse.Namespace, out: Out) -> int:
    items = load_jsonl(args.experiments)
    outdir = Path(args.out)
    state = StateFile(Path(args.state) if args.state else outdir / "lr-find-state.json")
    names = [_name(it, i) for i, it in enumerate(items)]
    ids, refused = _attach_or_submit(c, items, state, out)
    for i, why in refused.items():
        out.line(f"{names[i]}: refused\n{why}")
    bars = Bars(names, out=sys.stderr if args.progress == "stderr" else out.stream,
                tty=None if args.progress == "stderr" else out.tty)
    jobs: dict[int, JobView] = {}
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        for i, jid in enumerate(ids):
            if jid is None:
                bars.update(i, "refused")
                continue
            if i in jobs and jobs[i].status in TERMINAL:
                continue
            view = c.job(jid)
            jobs[i] = view
            p = view.progress
            bars.update(i, view.status, p.step if p else None, p.total if p else None)
        bars.draw()
        pending = [i for i, jid in enumerate(ids) if jid and jobs[i].status not in TERMINAL]
        if not pending:
            break
        if deadline is not None and time.monotonic() > deadline:
            out.line(f"timed out after {args.timeout:g} s; rerun the same command to re-attach")
            return EXIT_JOB_FAILED
        time.sleep(args.poll)
    rows = []
    (outdir / "plots").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        job = jobs.get(i)
        view = read_result(job.result) if job and job.status == "succeeded" else None
        if job and view is not None:
            (outdir / "plots" / f"{i + 1:03d}-{_safe(name)}.svg").write_text(c.plot_svg(job))
        rows.append(_summary_row(name, job, view, refused.get(i)))
    (outdir / "results.json").write_text(json.dumps(rows, indent=2))
    with open(outdir / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if args.json:
        out.json(rows)
    else:
        out.table(["name", "status", "recommended lr", "confidence", "flags"],
                  [(r["name"], r["status"], _lr(r["recommended_lr"]),
                    f"{r['confidence']:.2f}" if r["confidence"] is not None else "-", r["flags"])
                   for r in rows])
        out.line(f"results: {outdir / 'results.json'}, {outdir / 'results.csv'}; plots: "
                 f"{outdir / 'plots'}")
    bad = [r for r in rows if r["status"] != "succeeded"]
    if bad:
        out.line("failed: " + ", ".join(f"{r['name']} ({r['status']}"
                                        + (f", job {r['job_id']}" if r["job_id"] else "") + ")"
                                        for r in bad))
        return EXIT_JOB_FAILED
    return EXIT_OK


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]


def _job_rows(items: list[JobView]) -> list[tuple[Any, ...]]:
    return [(j.id, j.kind, j.status, _label(j), j.created_at, j.worker or "") for j in items]


def cmd_jobs(c: Client, args: argparse.Namespace, out: Out) -> int:
    if args.jobs_cmd == "list":
        page = c.jobs(status=args.status, kind=args.kind, limit=args.limit, cursor=args.cursor)
        if args.json:
            out.json(page.model_dump(mode="json", by_alias=True))
        else:
            out.table(["id", "kind", "status", "label", "created", "worker"],
                      _job_rows(page.items))
            if page.next_cursor:
                out.line(f"more: --cursor {page.next_cursor}")
        return EXIT_OK
    if args.jobs_cmd == "show":
        job = c.job(args.id)
        if args.json:
            out.json(job.model_dump(mode="json", by_alias=True))
            return EXIT_OK
        _show(job, out)
        return EXIT_OK if job.status != "failed" else EXIT_JOB_FAILED
    if args.jobs_cmd == "cancel":
        job = c.cancel(args.id)
        out.line(f"{job.id}: {job.status}" + (" (cancel requested)" if job.cancel_requested
                                              else ""))
        return EXIT_OK
    if args.jobs_cmd == "watch":
        bars = Bars([args.id[:12]], out=out.stream)
        for ev in c.stream(args.id):
            if ev.event == "progress":
                bars.update(0, "running", ev.data.get("step"), ev.data.get("total"))
            elif ev.event == "status":
                bars.update(0, str(ev.data.get("status")))
            bars.draw()
        job = c.job(args.id)
        _show(job, out)
        return EXIT_OK if job.status == "succeeded" else EXIT_JOB_FAILED
    raise AssertionError(args.jobs_cmd)


def _show(job: JobView, out: Out) -> None:
    out.line(f"job {job.id}  {job.kind}  {job.status}  {_label(job)}")
    out.line(f"created {job.created_at}  started {job.started_at or '-'}  finished "
             f"{job.finished_at or '-'}  worker {job.worker or '-'}")
    if job.progress:
        out.line(f"progress {job.progress.step}/{job.progress.total}")
    if job.problem:
        out.line(f"problem: {job.problem.get('title')}: {job.problem.get('detail')}")
    view = read_result(job.result)
    if isinstance(view, RangeTestResult):
        s = view.suggestions
        out.table(["suggestion", "lr"], [(n, _lr(v)) for n, v in s.marks()]
                  + [("1cycle min", _lr(s.cycle_min_lr)), ("1cycle max", _lr(s.cycle_max_lr))])
        conf = f"{s.confidence:.2f}" if s.confidence is not None else "-"
        out.line(f"recommended {_lr(s.recommended)} (confidence {conf}; flags "
                 f"{', '.join(s.flags) or 'none'}): {s.reason or ''}")
    elif isinstance(view, TrialsResult):
        _ranking(view, out)


def _ranking(view: TrialsResult, out: Out) -> None:
    by_label = {cand.label: cand for cand in view.candidates}
    order = [by_label[lb] for lb in view.ranking if lb in by_label] or view.candidates
    # "added by": the candidates the grid search added (past an edge, or beside the best)
    out.table(["rank", "candidate", "peak lr", "final val loss", "final train loss", "diverged",
               "added by"],
              [(n, cand.label, _lr(cand.peak_lr), _lr(cand.final_val_loss),
                _lr(cand.final_train_loss), "yes" if cand.diverged else "",
                "" if cand.phase == "trial" else cand.phase)
               for n, cand in enumerate(order, 1)])
    out.line(f"best: {view.best}" if view.best is not None
             else "best: none (every candidate diverged)")
    out.line(view.verdict.sentence)


def cmd_trials(c: Client, args: argparse.Namespace, out: Out) -> int:
    if args.trials_cmd == "submit":
        job = c.trials(load_spec(args.spec))
        if not args.wait:
            (out.json(job.model_dump(mode="json", by_alias=True)) if args.json
             else out.line(f"{job.id}: {job.status}"))
            return EXIT_OK
        job = c.wait(job, args.timeout)
    else:
        job = c.job(args.id)
    if args.json:
        out.json(job.model_dump(mode="json", by_alias=True))
    else:
        _show(job, out)
    return EXIT_OK if job.status == "succeeded" else EXIT_JOB_FAILED


def cmd_plot(c: Client, args: argparse.Namespace, out: Out) -> int:
    svg = c.plot_svg(args.id)
    if args.output == "-":
        out.stream.write(svg)
    else:
        Path(args.output).write_text(svg)
        out.line(f"wrote {args.output}")
    return EXIT_OK


def cmd_keys(argv: list[str]) -> int:
    """Key management runs on the server's host against its Redis: ``app.keys`` does it."""
    try:
        from app import keys  # type: ignore[attr-defined]  # lazily: only this command needs it
    except ImportError as exc:
        print(f"optim-advisor keys: key management is not available in this installation "
              f"(app.keys could not be imported: {exc})", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(keys.main(argv))


# -- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="optim-advisor",
        description="Optimizer advice, LR range tests and trials from the optim-advisor service.")
    p.add_argument("--url", default=None,
                   help=f"service URL (default ${URL_ENV}, else {DEFAULT_URL})")
    p.add_argument("--api-key", default=None, help=f"API key (default ${KEY_ENV})")
    p.add_argument("--timeout-http", type=float, default=30.0, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    a = sub.add_parser("advise", help="optimizer settings for a model spec (JSON or YAML)")
    a.add_argument("spec", help="spec.json, spec.yaml, or - for JSON on stdin")
    a.add_argument("--json", action="store_true", help="the full answer as JSON")

    lf = sub.add_parser("lr-find", help="LR range tests for every experiment of a JSONL file")
    lf.add_argument("experiments", help="one range-test request (JSON) per line")
    lf.add_argument("--out", default="lr-find-results", help="folder for results and plots")
    lf.add_argument("--state", default=None,
                    help="state file of submitted jobs (default OUT/lr-find-state.json); a rerun "
                         "re-attaches to them")
    lf.add_argument("--timeout", type=float, default=None, help="give up after this many s")
    lf.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    lf.add_argument("--progress", choices=["stdout", "stderr"], default="stderr",
                    help="where the progress bars go (default stderr)")
    lf.add_argument("--json", action="store_true", help="print the results as JSON")

    j = sub.add_parser("jobs", help="list, show, watch or cancel jobs")
    js = j.add_subparsers(dest="jobs_cmd", required=True, metavar="ACTION")
    jl = js.add_parser("list", help="recent jobs, newest first")
    jl.add_argument("--status", action="append",
                    choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jl.add_argument("--kind", action="append")
    jl.add_argument("--limit", type=int, default=20)
    jl.add_argument("--cursor")
    jl.add_argument("--json", action="store_true")
    for name, helptext in (("show", "a job and its result"), ("watch", "follow a job's progress"),
                           ("cancel", "cancel a job")):
        q = js.add_parser(name, help=helptext)
        q.add_argument("id")
        if name == "show":
            q.add_argument("--json", action="store_true")

    t = sub.add_parser("trials", help="short optimizer trials")
    ts = t.add_subparsers(dest="trials_cmd", required=True, metavar="ACTION")
    tsub = ts.add_parser("submit", help="submit a trials request (JSON or YAML)")
    tsub.add_argument("spec")
    tsub.add_argument("--wait", action="store_true", help="wait and print the ranking")
    tsub.add_argument("--timeout", type=float, default=None)
    tsub.add_argument("--json", action="store_true")
    tshow = ts.add_parser("show", help="a trials job's ranking")
    tshow.add_argument("id")
    tshow.add_argument("--json", action="store_true")

    pl = sub.add_parser("plot", help="a finished job's curves as SVG")
    pl.add_argument("id")
    pl.add_argument("-o", "--output", default="-", help="file (default: stdout)")

    sub.add_parser("keys", help="manage API keys (runs app.keys on the server's host)",
                   add_help=False)
    return p


_COMMANDS = {"advise": cmd_advise, "lr-find": cmd_lr_find, "jobs": cmd_jobs,
             "trials": cmd_trials, "plot": cmd_plot}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `keys` hands its arguments over untouched (app.keys has its own parser).
    i = 0
    while i < len(argv):
        if argv[i] == "keys":
            return cmd_keys(argv[i + 1:])
        if not argv[i].startswith("-"):
            break
        i += 1 if "=" in argv[i] or argv[i] in ("-h", "--help") else 2
    args = build_parser().parse_args(argv)
    out = Out()
    try:
        with Client(args.url, args.api_key, timeout=args.timeout_http) as c:
            return _COMMANDS[args.cmd](c, args, out)
    except UsageError as exc:
        print(f"optim-advisor: {_clean(str(exc), False)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiError as exc:
        print(f"optim-advisor: {_clean(str(exc), False)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConnectError as exc:
        url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
        print(f"optim-advisor: cannot reach the service at {url} ({exc}); set --url or "
              f"${URL_ENV}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ClientError as exc:
        print(f"optim-advisor: {_clean(str(exc), False)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    except KeyboardInterrupt:
        print("optim-advisor: interrupted; rerun the same command to re-attach",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
