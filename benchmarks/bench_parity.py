"""Do two runs of one suite give the same per-trial results? (sequential vs a local pool vs Ray)

    .venv/bin/python -m il_toolkit.bench.cli run quick --results /tmp/seq.jsonl
    .venv/bin/python -m il_toolkit.bench.cli run quick --workers 2 --results /tmp/pool.jsonl --workdir /tmp/pool
    .venv/bin/python -m il_toolkit.bench.cli run quick --executor ray --workers 2 --results /tmp/ray.jsonl --workdir /tmp/ray
    .venv/bin/python benchmarks/bench_parity.py /tmp/seq.jsonl /tmp/pool.jsonl /tmp/ray.jsonl

Per trial (matched by key) against the first file: per-episode records bit-identical or not,
the largest relative difference of any episode's return / max reward, whether seeds, lengths
and successes agree, whether the saved weights are byte-identical, and the run's wall-clock.
Writes ``benchmarks/results/bench_parity.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_results  # noqa: E402

from il_toolkit.bench.results import ResultsFile  # noqa: E402


def _weights(trial: dict) -> str | None:
    path = Path(trial["policy_path"]) / "model.safetensors"
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else None


def compare(base: Path, other: Path) -> dict:
    a = {t["key"]: t for t in ResultsFile(base).read().trials()}
    b = {t["key"]: t for t in ResultsFile(other).read().trials()}
    rows, worst = [], 0.0
    for key in sorted(set(a) & set(b)):
        ea, eb = a[key]["episodes"], b[key]["episodes"]
        rel = max((abs(x[f] - y[f]) / max(abs(x[f]), 1e-12) for x, y in zip(ea, eb) for f in ("sum_reward", "max_reward")),
                  default=0.0)
        worst = max(worst, rel)
        rows.append({
            "key": key, "identical": ea == eb and a[key]["expert_labels"] == b[key]["expert_labels"],
            "max_relative_difference": rel,
            "seeds_lengths_successes_equal": [(x["seed"], x["length"], x["success"]) for x in ea]
            == [(y["seed"], y["length"], y["success"]) for y in eb],
            "weights_identical": _weights(a[key]) is not None and _weights(a[key]) == _weights(b[key]),
        })
    runs = [r for r in ResultsFile(other).read().records if r.get("kind") == "run"]
    return {
        "base": str(base), "other": str(other),
        "executor": runs[-1]["executor"] if runs else None, "workers": runs[-1]["workers"] if runs else None,
        "wall_seconds": runs[-1]["wall_seconds"] if runs else None,
        "n_trials_compared": len(rows), "n_only_in_one": len(set(a) ^ set(b)),
        "n_bit_identical": sum(r["identical"] for r in rows),
        "n_weights_identical": sum(r["weights_identical"] for r in rows),
        "n_seeds_lengths_successes_equal": sum(r["seeds_lengths_successes_equal"] for r in rows),
        "max_relative_difference": worst, "trials": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="results of the reference run (e.g. sequential)")
    parser.add_argument("others", type=Path, nargs="+", help="results of the runs to compare with it")
    args = parser.parse_args()
    base_runs = [r for r in ResultsFile(args.base).read().records if r.get("kind") == "run"]
    comparisons = [compare(args.base, other) for other in args.others]
    for c in comparisons:
        print(f"{c['other']} ({c['executor']} x{c['workers']}, {c['wall_seconds']:.1f} s) vs {c['base']}: "
              f"{c['n_bit_identical']}/{c['n_trials_compared']} trials bit-identical, weights identical in "
              f"{c['n_weights_identical']}, seeds/lengths/successes equal in {c['n_seeds_lengths_successes_equal']}, "
              f"largest relative difference {c['max_relative_difference']:.2e}")
    write_results("bench_parity", {
        "base_wall_seconds": base_runs[-1]["wall_seconds"] if base_runs else None, "comparisons": comparisons,
    })


if __name__ == "__main__":
    main()
