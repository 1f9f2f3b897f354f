"""The package's import graph has no cycle (imports inside functions counted) and no lower layer
(features, model, policies) imports a higher one (trainers, experts, the harness)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

CODE_STATS = Path(__file__).resolve().parent.parent / "benchmarks" / "code_stats.py"


def _code_stats():
    spec = importlib.util.spec_from_file_location("code_stats", CODE_STATS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_and_no_layer_violations() -> None:
    stats = _code_stats()
    graph = stats.import_graph(stats.modules())
    assert len(graph) > 50  # the whole package was read
    assert stats.cycles(graph) == []
    assert stats.layer_violations(graph) == []


def test_the_checker_finds_cycles_and_violations() -> None:
    stats = _code_stats()
    assert stats.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = {"il_toolkit.policies.x": {"il_toolkit.train.y"}, "il_toolkit.train.y": set()}
    assert stats.layer_violations(graph) == ["il_toolkit.policies.x -> il_toolkit.train.y"]
