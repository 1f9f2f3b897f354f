"""``il-bench leaderboard RESULTS``: Markdown + a static HTML page (+ PNG plots) from a results file.

Per task and demonstration budget, every (method, training budget) is ranked by its mean
normalised score over seeds, with the IQM and rliable's bootstrap 95% interval over seeds beside it,
then success rate, training wall-clock, inference latency and expert labels. Plots per task:
success (and normalised score) against the number of demonstrations, the expert labels spent
(with each method's bootstrap band: what interactive methods are compared on), training
wall-clock and inference latency. Published figures sit in their own table, marked, never ranked with ours.
A method run on two or more tasks also gets one line across them: rliable's IQM and mean of the
normalised score over seeds x tasks with stratified-bootstrap intervals (Agarwal et al., 2021).
"""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from il_toolkit.bench.anchors import Anchor, anchors_for, other_anchors
from il_toolkit.bench.results import ResultsFile
from il_toolkit.bench.stats import summarize, summarize_tasks


@dataclass
class Row:
    """One (method, training budget) at one demonstration budget, over seeds."""

    method: str
    budget_name: str
    n_demos: int
    seeds: list[int]
    score: dict[str, Any]
    success: dict[str, Any]
    avg_max_reward: float
    mean_return: float
    train_seconds: float
    latency_ms: float
    expert_labels: float
    context_switches: float | None = None  # interactive methods: hand-overs between learner and expert, per run
    expert_share: float | None = None  # interactive methods: the expert's share of executed steps


@dataclass
class TaskBoard:
    task: str  # the env id, plus " (obs_type)" when not the default
    env_id: str
    score: str
    rows_by_demos: dict[int, list[Row]]
    reference: dict[str, Any] | None
    trials: list[dict[str, Any]]


@dataclass
class AcrossTasks:
    """One (method, training budget) aggregated over the tasks it ran on (see :func:`across_tasks`)."""

    method: str
    budget_name: str
    tasks: list[str]
    seeds: list[int]
    stats: dict[str, Any]


@dataclass
class Written:
    markdown: Path
    html: Path
    plots: list[Path] = field(default_factory=list)
    n_trials: int = 0
    problems: list[str] = field(default_factory=list)


def latest_trials(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished trials, one per key (when two processes ran the same trial, the last record wins)."""
    by_key: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("kind") == "trial" and record.get("status") == "ok":
            by_key[record["key"]] = record
    return list(by_key.values())


def build_boards(records: list[dict[str, Any]]) -> list[TaskBoard]:
    """Group finished trials by task and demonstration budget and rank them."""
    import numpy as np

    from il_toolkit.bench.references import reference_key

    trials = latest_trials(records)
    references = {r["key"]: r for r in records if r.get("kind") == "reference"}
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        by_task[_task_label(t)].append(t)
    boards = []
    for task in sorted(by_task):
        env_trials = by_task[task]
        first = env_trials[0]
        groups: dict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
        for t in env_trials:
            groups[(t["n_demos"], t["method"], t["budget_name"])].append(t)
        rows_by_demos: dict[int, list[Row]] = defaultdict(list)
        for (n_demos, method, budget_name), group in groups.items():
            group = sorted(group, key=lambda t: t["seed"])
            rows_by_demos[n_demos].append(Row(
                method=method, budget_name=budget_name, n_demos=n_demos, seeds=[t["seed"] for t in group],
                score=summarize([t["normalized_score"] for t in group]),
                success=summarize([t["pc_success"] for t in group]),
                avg_max_reward=float(np.mean([t["avg_max_reward"] for t in group])),
                mean_return=float(np.mean([t["mean_return"] for t in group])),
                train_seconds=float(np.mean([t["train_seconds"] for t in group])),
                latency_ms=float(np.mean([t["latency_ms"]["mean"] for t in group])),
                expert_labels=float(np.mean([t["expert_labels"] for t in group])),
                context_switches=_mean_extra(group, "context_switches"),
                expert_share=_mean_extra(group, "expert_share"),
            ))
        for rows in rows_by_demos.values():
            rows.sort(key=lambda r: (-(r.score["mean"] if r.score["mean"] is not None else -1e9),
                                     -(r.score["iqm"] if r.score["iqm"] is not None else -1e9), r.method, r.budget_name))
        reference = references.get(reference_key(first["env_id"], first["eval_seed"], first["eval_episodes"],
                                                 first.get("obs_type")))
        boards.append(TaskBoard(task, first["env_id"], first.get("score", "sum_reward"),
                                dict(sorted(rows_by_demos.items())), reference, env_trials))
    return boards


def across_tasks(boards: list[TaskBoard]) -> list[AcrossTasks]:
    """Every (method, training budget) run on two or more tasks, aggregated across them with rliable.

    Each task contributes its normalised scores at the largest demonstration budget the method
    ran there, for the training seeds every such task has: a ``(seeds, tasks)`` matrix. Ranked by IQM.
    """
    import numpy as np

    scores: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(dict)
    for board in boards:
        scored = [t for t in board.trials if t.get("normalized_score") is not None and np.isfinite(t["normalized_score"])]
        best_demos: dict[tuple[str, str], int] = {}
        for t in scored:
            key = (t["method"], t["budget_name"])
            best_demos[key] = max(best_demos.get(key, -1), t["n_demos"])
        for t in scored:
            key = (t["method"], t["budget_name"])
            if t["n_demos"] == best_demos[key]:
                scores[key].setdefault(board.task, {})[t["seed"]] = float(t["normalized_score"])
    lines = []
    for (method, budget_name), by_task in scores.items():
        tasks = sorted(by_task)
        seeds = sorted(set.intersection(*(set(by_task[task]) for task in tasks))) if tasks else []
        if len(tasks) < 2 or not seeds:
            continue
        matrix = np.array([[by_task[task][seed] for task in tasks] for seed in seeds])
        lines.append(AcrossTasks(method, budget_name, tasks, seeds, summarize_tasks(matrix)))
    return sorted(lines, key=lambda line: (-line.stats["iqm"], line.method, line.budget_name))


ACROSS_HEADER = ["method", "training budget", "tasks", "seeds", "IQM", "IQM 95% CI", "mean", "mean 95% CI"]


def across_cells(line: AcrossTasks) -> list[str]:
    stats = line.stats
    return [line.method, line.budget_name, str(len(line.tasks)), str(len(line.seeds)), _num(stats["iqm"]),
            "[{:.2f}, {:.2f}]".format(*stats["iqm_ci"]), _num(stats["mean"]), "[{:.2f}, {:.2f}]".format(*stats["mean_ci"])]


ACROSS_NOTE = ("Normalised score over seeds x tasks at each task's largest demonstration budget, for methods run on two "
               "or more tasks; interquartile mean and stratified-bootstrap 95% intervals from rliable (Agarwal et al., "
               "2021, \"Deep Reinforcement Learning at the Edge of the Statistical Precipice\").")


def _mean_extra(trials: list[dict[str, Any]], key: str) -> float | None:
    """The mean of a trainer's own figure (``train_extra[key]``) over trials; None if none has it."""
    import numpy as np

    values = [t.get("train_extra", {}).get(key) for t in trials]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _task_label(trial: dict[str, Any]) -> str:
    obs_type = trial.get("obs_type")
    return trial["env_id"] if not obs_type else f"{trial['env_id']} ({obs_type})"


# -- plots -------------------------------------------------------------------------------
def plot_task(board: TaskBoard, out_dir: Path) -> list[Path]:
    """Four PNGs per task: success and normalised score against demonstrations, expert labels,
    training wall-clock and inference latency (one colour per method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    slug = board.task.split("/")[-1].lower().replace(" (", "-").replace(")", "")
    from il_toolkit.bench.methods import METHOD_REGISTRY

    methods = sorted({t["method"] for t in board.trials})
    palette = list(METHOD_REGISTRY.keys()) + [m for m in methods if m not in METHOD_REGISTRY]
    colours = {m: plt.get_cmap("tab10")(palette.index(m) % 10) for m in methods}  # one colour per method everywhere
    demo_budgets = sorted(board.rows_by_demos)
    sizes = {n: 25 + 50 * i for i, n in enumerate(demo_budgets)}  # marker area grows with the demonstration budget
    paths = []

    def panels(title: str):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        fig.suptitle(f"{board.task}: {title}", fontsize=11)
        axes[0].set_ylabel("success (%)")
        axes[0].set_ylim(-5, 105)
        axes[1].set_ylabel(f"normalised score (on {board.score})")
        axes[1].axhline(1.0, color="0.4", lw=0.8, ls="--")
        axes[1].axhline(0.0, color="0.4", lw=0.8, ls=":")
        axes[1].annotate("expert", (0.01, 1.0), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        axes[1].annotate("random", (0.01, 0.0), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        for ax in axes:
            ax.grid(alpha=0.3)
        return fig, axes

    def finish(fig: Any, axes: Any, name: str) -> Path:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
        return _save(fig, out_dir / name)

    # success vs demonstrations and vs expert labels (what an interactive method spends): one line per
    # (method, budget), mean over seeds with the bootstrap interval
    series: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for rows in board.rows_by_demos.values():
        for row in rows:
            series[(row.method, row.budget_name)].append(row)
    budgets_of: dict[str, list[str]] = defaultdict(list)
    for method, budget in sorted(series):
        budgets_of[method].append(budget)
    markers = "osd^vP*X"
    for x_of, title, name in ((lambda r: r.n_demos, "against number of demonstrations", "success_vs_demos"),
                              (lambda r: r.expert_labels, "against expert labels", "success_vs_labels")):
        fig, axes = panels(title)
        for (method, budget), rows in sorted(series.items()):
            rows = sorted(rows, key=lambda r: (x_of(r), r.n_demos))
            x = [x_of(r) for r in rows]
            index = budgets_of[method].index(budget)
            label = method if len(budgets_of[method]) == 1 else f"{method} #{index + 1} ({budget[:40]})"
            for ax, key in ((axes[0], "success"), (axes[1], "score")):
                stats = [getattr(r, key) for r in rows]
                y = np.array([s["mean"] if s["mean"] is not None else np.nan for s in stats], dtype=float)
                low = np.array([s["ci_low"] if s["ci_low"] is not None else np.nan for s in stats], dtype=float)
                high = np.array([s["ci_high"] if s["ci_high"] is not None else np.nan for s in stats], dtype=float)
                ax.errorbar(x, y, yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)],
                            marker=markers[index % len(markers)], ls="-" if index == 0 else "--", capsize=3,
                            color=colours[method], label=label)
                if name == "success_vs_labels" and len(x) > 1:
                    ax.fill_between(x, low, high, color=colours[method], alpha=0.12, lw=0)
        for ax in axes:
            if name == "success_vs_demos":
                ax.set_xscale("log")
                ax.minorticks_off()
                ax.set_xlabel("expert demonstrations (episodes)")
                ax.set_xticks(sorted(board.rows_by_demos))
                ax.set_xticklabels([str(n) for n in sorted(board.rows_by_demos)])
            else:
                ax.set_xlabel("expert labels (states the expert labelled; mean over seeds)")
        paths.append(finish(fig, axes, f"{slug}_{name}.png"))

    for field_name, xlabel, suffix, log in (
        ("train_seconds", "training wall-clock (s)", "success_vs_train_time", False),
        ("latency", "inference latency per action (ms, mean)", "success_vs_latency", True),
    ):
        fig, axes = panels(f"against {xlabel.split(' (')[0]}")
        for method in methods:
            trials = [t for t in board.trials if t["method"] == method]
            x = [t["train_seconds"] if field_name == "train_seconds" else t["latency_ms"]["mean"] for t in trials]
            area = [sizes[t["n_demos"]] for t in trials]
            axes[0].scatter(x, [t["pc_success"] for t in trials], s=area, color=colours[method], label=method, alpha=0.75)
            axes[1].scatter(x, [t["normalized_score"] if t["normalized_score"] is not None else np.nan for t in trials],
                            s=area, color=colours[method], label=method, alpha=0.75)
        axes[0].set_title(f"marker size: demonstrations ({', '.join(map(str, demo_budgets))})", fontsize=8)
        for ax in axes:
            ax.set_xlabel(xlabel)
            if log:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        paths.append(finish(fig, axes, f"{slug}_{suffix}.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- text --------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(stats: dict[str, Any], digits: int = 2) -> str:
    if stats["mean"] is None:
        return "—"
    if stats["n"] < 2:
        return "(1 seed)"
    return f"[{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


TABLE_HEADER = ["rank", "method", "training budget", "seeds", "norm. score mean", "IQM", "95% CI (seeds)",
                "success %", "avg max reward", "return", "train s", "latency ms", "expert labels",
                "context switches", "expert share"]
ANCHOR_HEADER = ["published", "metric", "value", "demonstrations", "source", "note"]


def row_cells(rank: int, row: Row) -> list[str]:
    return [str(rank), row.method, row.budget_name, str(len(row.seeds)), _num(row.score["mean"]), _num(row.score["iqm"]),
            _ci(row.score), _num(row.success["mean"], 1), _num(row.avg_max_reward, 3), _num(row.mean_return, 1),
            _num(row.train_seconds, 1), _num(row.latency_ms, 3), f"{row.expert_labels:.0f}",
            _num(row.context_switches, 0), _num(row.expert_share, 2)]


def anchor_cells(anchor: Anchor) -> list[str]:
    return [f"{anchor.method} (published)", anchor.metric, anchor.value, anchor.demos, anchor.source, anchor.note]


def reference_text(board: TaskBoard) -> str:
    if board.reference is None:
        return "no reference record (normalised scores unavailable)"
    e, r = board.reference["expert"]["aggregates"], board.reference["random"]["aggregates"]
    return (f"normalised on per-episode `{board.score}` over {board.reference['eval_episodes']} evaluation episodes "
            f"(seeds from {board.reference['eval_seed']}): expert `{board.reference.get('expert_name')}` = 1 (return "
            f"{e['mean_return']:.1f}, success {e['pc_success']:.0f}%, avg max reward {e['avg_max_reward']:.3f}), "
            f"uniform random = 0 (return {r['mean_return']:.1f}, success {r['pc_success']:.0f}%, avg max reward "
            f"{r['avg_max_reward']:.3f})")


def run_lines(records: list[dict[str, Any]]) -> list[str]:
    lines = []
    for run in (r for r in records if r.get("kind") == "run"):
        if run.get("overhead_share") is None:
            overhead = "harness overhead not separable (trials overlapped)"
        else:
            overhead = f"harness overhead {run['overhead_seconds']:.1f} s ({100 * run['overhead_share']:.1f}%)"
        lines.append(f"suite `{run['suite']}`, {run['executor']} x{run['workers']}, finished {run.get('finished_utc')}: "
                     f"{run['n_ok']} trials run ({run['n_skipped']} already done, {run['n_failed']} failed) in "
                     f"{run['wall_seconds']:.1f} s (training {run['train_seconds']:.1f} s, evaluation "
                     f"{run['eval_seconds']:.1f} s, dataset collection {run['collect_seconds']:.1f} s, references "
                     f"{run['reference_seconds']:.1f} s); {overhead}; "
                     f"git {str(run.get('git_revision'))[:10]}{' (dirty)' if run.get('git_dirty') else ''}")
    return lines


def markdown(boards: list[TaskBoard], across: list[AcrossTasks], records: list[dict[str, Any]],
             plots: dict[str, list[Path]], problems: list[str], include_anchors: bool, source: str) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        esc = [[c.replace("|", "\\|") for c in r] for r in rows]
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in esc]

    out = ["# Leaderboard", "", f"From `{source}`, written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
           "Ranked by mean normalised score over seeds (expert = 1, uniform random = 0); IQM and the bootstrap 95% "
           "interval are over seeds. Success and latency are per evaluation episode / per action. Published figures "
           "are in their own tables, marked *(published)*, and are not ranked: they come from other code, "
           "demonstrations and protocols.", ""]
    for line in run_lines(records):
        out.append(f"- {line}")
    for problem in problems:
        out.append(f"- **warning:** {problem}")
    if across:
        out += ["", "## Across tasks", "", ACROSS_NOTE, ""]
        out += table(ACROSS_HEADER, [across_cells(line) for line in across])
    for board in boards:
        out += ["", f"## {board.task}", "", reference_text(board), ""]
        for n_demos, rows in board.rows_by_demos.items():
            out += [f"### {n_demos} demonstrations", ""]
            out += table(TABLE_HEADER, [row_cells(i + 1, r) for i, r in enumerate(rows)])
            out.append("")
        if include_anchors and anchors_for(board.env_id):
            out += ["Published figures (not ranked):", ""]
            out += table(ANCHOR_HEADER, [anchor_cells(a) for a in anchors_for(board.env_id)])
            out.append("")
        for path in plots.get(board.task, []):
            out.append(f"![{path.stem}]({path.name})")
        out.append("")
    if include_anchors:
        shown = {b.env_id for b in boards}
        extra = [a for a in anchors_for_missing(shown)] + other_anchors(shown)
        if extra:
            out += ["## Published figures on other tasks (not ranked, for scale)", ""]
            out += table(["task"] + ANCHOR_HEADER, [[a.task] + anchor_cells(a) for a in extra])
            out.append("")
    return "\n".join(out) + "\n"


def anchors_for_missing(shown: set[str]) -> list[Anchor]:
    from il_toolkit.bench.anchors import ANCHORS

    return [a for a in ANCHORS if a.task.startswith("il_toolkit/") and a.task not in shown]


def html_page(boards: list[TaskBoard], across: list[AcrossTasks], records: list[dict[str, Any]],
              plots: dict[str, list[Path]], problems: list[str], include_anchors: bool, source: str) -> str:
    """The static page, rendered from ``templates/leaderboard.html.j2`` (jinja2, every value escaped;
    Markdown-style ``code`` spans become <code>), the plots embedded as base64 PNGs."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("il_toolkit.bench", "templates"),
                                     autoescape=True, trim_blocks=False)
    environment.filters["code"] = _code_spans
    shown = {b.env_id for b in boards}
    extra = (anchors_for_missing(shown) + other_anchors(shown)) if include_anchors else []
    return environment.get_template("leaderboard.html.j2").render(
        source=source, written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), run_lines=run_lines(records),
        problems=problems, header=TABLE_HEADER, anchor_header=ANCHOR_HEADER,
        across_header=ACROSS_HEADER, across_note=ACROSS_NOTE, across=[across_cells(line) for line in across],
        boards=[{
            "task": board.task, "reference": reference_text(board),
            "sections": [{"n_demos": n, "rows": [row_cells(i + 1, r) for i, r in enumerate(rows)]}
                         for n, rows in board.rows_by_demos.items()],
            "anchors": [anchor_cells(a) for a in anchors_for(board.env_id)] if include_anchors else [],
            "plots": [{"name": p.stem, "data": base64.b64encode(p.read_bytes()).decode()} for p in plots.get(board.task, [])],
        } for board in boards],
        extra_anchors=[[a.task] + anchor_cells(a) for a in extra],
    )


def _code_spans(text: Any) -> Any:
    """Escape ``text`` and turn its Markdown `code` spans into <code> elements."""
    import re

    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(str(text)))))


def write_leaderboard(results: str | Path, out_dir: str | Path | None = None, *, include_anchors: bool = True) -> Written:
    """Read ``results`` and write ``leaderboard.md``, ``index.html`` and the PNGs into ``out_dir``
    (default: the results path without its suffix)."""
    results = Path(results)
    if not results.exists():
        raise FileNotFoundError(f"no results file {results}; run `il-bench run SUITE --results {results}` first")
    report = ResultsFile(results).read()
    out = Path(out_dir) if out_dir is not None else results.with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    boards = build_boards(report.records)
    plots = {b.task: plot_task(b, out) for b in boards}
    written = Written(out / "leaderboard.md", out / "index.html", [p for ps in plots.values() for p in ps],
                      sum(len(b.trials) for b in boards), list(report.problems))
    across = across_tasks(boards)  # rliable's bootstrap: computed once for both pages
    written.markdown.write_text(markdown(boards, across, report.records, plots, report.problems, include_anchors,
                                         results.name))
    written.html.write_text(html_page(boards, across, report.records, plots, report.problems, include_anchors,
                                      results.name))
    (out / "leaderboard.json").write_text(json.dumps(
        [{"task": b.task, "env_id": b.env_id, "score": b.score, "demos": {str(n): [r.__dict__ for r in rows]
                                                          for n, rows in b.rows_by_demos.items()}} for b in boards],
        indent=1, default=str))
    return written
