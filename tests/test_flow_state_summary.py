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


def test_reevaluate_scores_every_kept_checkpoint_again_and_recomputes_the_curve(tmp_path, monkeypatch):
    import argparse
    import json
    from types import SimpleNamespace

    import il_toolkit.evaluation

    ode, execution = {"solver": "euler", "n_steps": 1}, {"n_action_steps": 4}
    saved = {flow_state.checkpoint_path(tmp_path, "t", 0): 80.0,  # the paths run() saves the checkpoints at
             flow_state.checkpoint_path(tmp_path, "t", 0, ode): 78.0,
             flow_state.checkpoint_path(tmp_path, "t", 0, execution): 60.0}
    for path in saved:
        path.mkdir()
    row = {**_row(0, 90, {("euler", 1): 50}), "execution_variants": [{**execution, "pc_success": 40, "avg_max_reward": 1}]}
    source = {"settings": {"env_id": "il_toolkit/PushT-v0", "eval_episodes": 50, "eval_seed": 7}, "benchmark": "old",
              "summary": {"t": {"mean_pc_success": 90.0, "per_seed": [90.0], "ode_curve": {}}},
              "rows": [row, {"trainer": "t", "seed": 1, "skipped": "no state"}],
              "latency_ms_per_chunk": {"t": TIMINGS}, "environment": {"git_revision": "abc"}}
    (tmp_path / "src.json").write_text(json.dumps(source))
    evaluated = []

    def fake_evaluate(path, env_id, episodes, seed, num_envs=1):
        evaluated.append((Path(path), env_id, episodes, seed))
        return SimpleNamespace(aggregates={"pc_success": saved[Path(path)], "avg_max_reward": 0.5}, seconds=1.0)

    monkeypatch.setattr(il_toolkit.evaluation, "evaluate_checkpoint", fake_evaluate)
    flow_state.reevaluate(argparse.Namespace(reevaluate=str(tmp_path / "src"), name=str(tmp_path / "new"),
                                             keep_checkpoints=tmp_path, eval_episodes=200, also_ode_steps=[],
                                             also_solvers=["euler"]))
    assert evaluated == [(path, "il_toolkit/PushT-v0", 200, 7) for path in saved]
    result = json.loads((tmp_path / "new.json").read_text())
    assert result["benchmark"] == str(tmp_path / "new") and result["settings"]["eval_episodes"] == 200
    assert result["source_environment"] == {"git_revision": "abc"} and result["summary"]["t"]["per_seed"] == [80.0]
    assert result["rows"][0]["execution_variants"][0]["pc_success"] == 60.0
    points = {(p["solver"], p["n_steps"]): p for p in result["summary"]["t"]["ode_curve"]["points"]}
    assert points[("euler", 1)]["mean_pc_success"] == 78.0 and points[("euler", 1)]["keeps_95"]  # 78 / 80 = 0.975
    with pytest.raises(SystemExit, match="--name other than SOURCE"):
        flow_state.reevaluate(argparse.Namespace(reevaluate="src", name="src", keep_checkpoints=tmp_path, eval_episodes=5,
                                                 also_ode_steps=[], also_solvers=["euler"]))
    next(iter(saved)).rmdir()
    with pytest.raises(SystemExit, match="1 of the run's checkpoints are not in"):  # before evaluating anything
        flow_state.reevaluate(argparse.Namespace(reevaluate=str(tmp_path / "src"), name=str(tmp_path / "again"),
                                                 keep_checkpoints=tmp_path, eval_episodes=200, also_ode_steps=[],
                                                 also_solvers=["euler"]))
    assert len(evaluated) == len(saved)


def test_reevaluate_adds_the_ode_settings_a_run_did_not_evaluate(tmp_path, monkeypatch):
    import argparse
    import json
    from types import SimpleNamespace

    import il_toolkit.evaluation

    own = flow_state.checkpoint_path(tmp_path, "t", 0)
    own.mkdir()
    row = {"trainer": "t", "seed": 0, "pc_success": 90, "solver": "euler", "n_steps": 10}
    (tmp_path / "src.json").write_text(json.dumps({"settings": {"env_id": "e"}, "summary": {"t": {}}, "rows": [row]}))
    success = {own: 90.0}

    def fake_save(path, variant, target):
        target.mkdir()
        success[target] = 40.0 + variant["n_steps"]
        return target

    monkeypatch.setattr(flow_state, "save_variant", fake_save)
    monkeypatch.setattr(flow_state, "latency", lambda path, steps: [{"solver": "euler", "ode_steps": n, "ms_per_chunk": n}
                                                                    for n in steps])
    monkeypatch.setattr(il_toolkit.evaluation, "evaluate_checkpoint", lambda path, *a, **k: SimpleNamespace(
        aggregates={"pc_success": success[Path(path)], "avg_max_reward": 0.5}, seconds=1.0))
    flow_state.reevaluate(argparse.Namespace(reevaluate=str(tmp_path / "src"), name=str(tmp_path / "new"),
                                             keep_checkpoints=tmp_path, eval_episodes=5, also_ode_steps=[1, 2, 10],
                                             also_solvers=["euler"]))
    result = json.loads((tmp_path / "new.json").read_text())
    assert [(v["n_steps"], v["pc_success"]) for v in result["rows"][0]["ode_variants"]] == [(1, 41.0), (2, 42.0)]
    points = {p["n_steps"]: p for p in result["summary"]["t"]["ode_curve"]["points"]}
    assert points[2]["mean_pc_success"] == 42.0 and not points[2]["keeps_95"] and points[10]["mean_pc_success"] == 90.0
    assert points[1]["ms_per_chunk"] == 1  # timed, although the source had no timings


def test_reflow_from_names_every_missing_teacher_before_collecting_anything(tmp_path, monkeypatch):
    (tmp_path / "naive_flow_matching_policy_trainer-s0").mkdir()
    monkeypatch.setattr(sys, "argv", ["flow_state.py", "--reflow-from", str(tmp_path), "--seeds", "0", "1",
                                      "--trainers", "naive_flow_matching_policy_trainer"])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # restored after the test
    import il_toolkit

    monkeypatch.setattr(il_toolkit, "collect_dataset", lambda *a, **k: pytest.fail("collected before checking"))
    with pytest.raises(SystemExit, match="no kept checkpoint .*naive_flow_matching_policy_trainer-s1 "):
        flow_state.main()
    (tmp_path / "naive_flow_matching_policy_trainer-s1").mkdir()  # depth trainers keep none on a state env
    monkeypatch.setattr(sys, "argv", ["flow_state.py", "--reflow-from", str(tmp_path), "--seeds", "0", "1",
                                      "--trainers", "naive_flow_matching_policy_trainer",
                                      "vfp_single_expert_trainer_depth", "--keep-checkpoints", str(tmp_path)])
    with pytest.raises(SystemExit, match="would overwrite the --reflow-from checkpoints"):
        flow_state.main()


def test_reflow_from_refuses_the_options_that_shape_a_new_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["flow_state.py", "--reflow-from", str(tmp_path), "--horizon", "8",
                                      "--mlp-width", "512"])
    with pytest.raises(SystemExit):
        flow_state.parse_args()
    assert "drop --horizon, --mlp-width" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["flow_state.py", "--reflow-from", str(tmp_path), "--steps", "100"])
    assert flow_state.parse_args().steps == 100  # training options still apply
