"""The flow_state benchmark's ODE curve: each ODE setting is judged against each seed's success at the policy's own setting."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
flow_state = pytest.importorskip("flow_state")


def _row(seed, success, variants):
    return {"trainer": "t", "seed": seed, "pc_success": success,
            "ode_variants": [{"solver": s, "n_steps": n, "pc_success": v} for (s, n), v in variants.items()]}


TIMINGS = [{"solver": "euler", "ode_steps": 1, "ms_per_chunk": 0.3}, {"solver": "euler", "ode_steps": 2, "ms_per_chunk": 0.5},
           {"solver": "midpoint", "ode_steps": 1, "ms_per_chunk": 0.52}, {"solver": "euler", "ode_steps": 10, "ms_per_chunk": 1.8}]


def test_a_setting_keeps_the_success_only_when_every_seed_keeps_95_percent_of_its_own():
    rows = [_row(0, 100, {("euler", 1): 96, ("euler", 2): 99, ("midpoint", 1): 100}),
            _row(1, 90, {("euler", 1): 80, ("euler", 2): 86, ("midpoint", 1): 90})]
    curve = flow_state.ode_curve(rows, TIMINGS)
    points = {(p["solver"], p["n_steps"]): p for p in curve["points"]}
    assert not points[("euler", 1)]["keeps_95"]  # seed 1: 80 / 90 = 0.89
    assert points[("euler", 2)]["keeps_95"] and points[("euler", 2)]["min_share_of_own_setting"] == pytest.approx(0.956, abs=1e-3)
    assert points[("midpoint", 1)]["evaluations"] == 2 and points[("euler", 10)]["per_seed"] == [100, 90]
    assert curve["cheapest_kept"]["solver"] == "euler" and curve["cheapest_kept"]["n_steps"] == 2


def test_a_setting_missing_on_a_seed_or_a_failed_baseline_is_never_kept():
    rows = [_row(0, 100, {("euler", 1): 100}), _row(1, 0, {("euler", 1): 0, ("euler", 2): 0})]
    points = {(p["solver"], p["n_steps"]): p for p in flow_state.ode_curve(rows, TIMINGS)["points"]}
    assert not points[("euler", 1)]["keeps_95"]  # seed 1's baseline is 0%: no share to keep
    assert not points[("euler", 2)]["keeps_95"]  # measured on one seed only
