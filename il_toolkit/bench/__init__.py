"""The benchmark harness: suites as data, a method registry, trials, results and a leaderboard.

A *suite* (``il_toolkit/bench/suites/NAME.toml``, or any path) is tasks x methods x seeds x demonstration budgets x
training budgets. ``il-bench run SUITE`` expands it into trials, collects (or reuses) one expert
Minari dataset per task, seed and demonstration budget, trains every method, evaluates every
policy with :func:`il_toolkit.evaluation.evaluate` on the same seeds, and appends one JSON line
per trial to a results file. ``il-bench leaderboard RESULTS`` turns that file into Markdown and
a static HTML page.

Modules (one job each): :mod:`.suite` (parse and validate), :mod:`.methods` (``METHOD_REGISTRY``
and the adapters), :mod:`.trial` (one trial, start to record), :mod:`.references` (expert and
random returns for normalised scores), :mod:`.results` (the locked, append-only JSONL file),
:mod:`.executors` (local process pool, Ray), :mod:`.runner` (the ``run`` command),
:mod:`.stats`, :mod:`.anchors` and :mod:`.leaderboard` (the ``leaderboard`` command),
:mod:`.cli`.
"""

from il_toolkit.bench.methods import METHOD_REGISTRY
from il_toolkit.bench.suite import Suite, SuiteError, load_suite

__all__ = ["METHOD_REGISTRY", "Suite", "SuiteError", "load_suite"]
