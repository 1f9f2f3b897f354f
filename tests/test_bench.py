"""The benchmark harness: suites, the results file, skipping and redoing trials, the
leaderboard's statistics and pages, and a tiny suite end to end on CartPole."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from il_toolkit.bench import METHOD_REGISTRY, SuiteError, load_suite
from il_toolkit.bench.results import ResultsFile
from il_toolkit.bench.stats import bootstrap_ci, iqm, summarize, summarize_tasks
from il_toolkit.bench.suite import parse_suite

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "seeds": [0],
    "eval_episodes": 3,
    "tasks": [{
        "env": "CartPole-v1",
        "demos": [1],
        "methods": ["bc", "dagger", "gail"],
        "budgets": {
            "bc": [{"bc_epochs": 2, "learning_rate": 1e-3}],
            "dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1}],
            "gail": [{"total_timesteps": 512, "ppo_n_steps": 256, "gail_n_envs": 2, "batch_size": 64}],
        },
    }],
}


def _suite(**task_changes):
    data = json.loads(json.dumps(TINY))
    data["tasks"][0].update(task_changes)
    return data


# -- suites ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["quick", "standard", "full", "interactive", "smoke"])
def test_the_shipped_suites_parse(name):
    suite = load_suite(str(ROOT / "il_toolkit" / "bench" / "suites" / f"{name}.toml"), check_envs=name == "quick")
    assert suite.name == name and suite.trials()
    if name == "quick":
        envs = {t.env_id for t in suite.tasks}
        assert envs == {"il_toolkit/CartPole-v1", "il_toolkit/PushT-v0"}
        pusht = next(t for t in suite.tasks if t.env_id == "il_toolkit/PushT-v0")
        state_methods = {m for m in METHOD_REGISTRY.keys() if "state" in METHOD_REGISTRY.metadata(m)["observations"]}
        assert set(pusht.methods) == state_methods  # every method that reads a state
        cartpole = next(t for t in suite.tasks if t.env_id == "il_toolkit/CartPole-v1")
        # they need continuous actions
        assert set(cartpole.skipped_methods) == {"flow_bc", "flow_chunked", "flow_estimated_state", "flow_instructed",
                                                 "ensemble_dagger", "thrifty_dagger", "vla"}


def test_a_suite_is_found_by_name_and_unknown_names_list_the_known_ones():
    assert load_suite("quick").name == "quick"
    with pytest.raises(SuiteError, match="known suites: full, interactive, quick, smoke, standard"):
        load_suite("quik")


def test_unknown_method_and_env_are_refused_with_the_known_lists():
    with pytest.raises(SuiteError) as info:
        parse_suite(_suite(methods=["bc", "behaviour_cloning"]))
    assert "unknown method 'behaviour_cloning'" in str(info.value)
    assert ("known methods: bc, dagger, ensemble_dagger, flow_bc, flow_chunked, flow_estimated_state, flow_instructed, "
            "gail, hg_dagger, thrifty_dagger, vla") in str(info.value)
    with pytest.raises(SuiteError) as info:
        parse_suite(_suite(env="CartPol-v1"))
    assert "unknown env 'CartPol-v1'" in str(info.value) and "il_toolkit/PushT-v0" in str(info.value)


def test_every_problem_is_reported_at_once():
    data = _suite(methods=["nope"], demos=[0], score="return")
    data["seeds"] = [-1]
    data["surprise"] = 1
    with pytest.raises(SuiteError) as info:
        parse_suite(data)
    message = str(info.value)
    for expected in ("unknown method 'nope'", "demos' must be a non-empty list of integers >= 1", "score must be one of",
                     "'seeds' must be", "unknown keys ['surprise']"):
        assert expected in message, expected


def test_budgets_are_checked_against_the_config():
    with pytest.raises(SuiteError, match=r"unknown budget keys \['epochs'\]"):
        parse_suite(_suite(budgets={"bc": [{"epochs": 3}]}))
    with pytest.raises(SuiteError, match="bc_epochs must be a positive integer"):
        parse_suite(_suite(budgets={"bc": [{"bc_epochs": 0}]}))
    with pytest.raises(SuiteError, match="set by the harness"):
        parse_suite(_suite(budgets={"bc": [{"seed": 3}]}))
    with pytest.raises(SuiteError, match="method 'flow_bc' cannot learn discrete actions"):
        parse_suite(_suite(methods=["bc", "flow_bc"], budgets={}))


def test_observation_types_pick_the_methods_that_can_read_them():
    with pytest.raises(SuiteError, match="obs_type 'pixels' is not offered by il_toolkit/CartPole-v1"):
        parse_suite(_suite(obs_type="pixels"))
    data = _suite(env="PushT-v0", obs_type="pixels_agent_pos", methods="all", budgets={})
    (task,) = parse_suite(data).tasks
    assert task.methods == ("flow_bc", "flow_chunked", "flow_estimated_state", "vla") and set(task.skipped_methods) == {
        "bc", "dagger", "gail", "hg_dagger", "ensemble_dagger", "thrifty_dagger", "flow_instructed"}
    (instructed,) = parse_suite(_suite(env="PushTTwoTarget-v0", methods="all", budgets={})).tasks
    assert instructed.methods == ("flow_chunked", "flow_instructed")  # flow_chunked: blind to the instruction
    trial = parse_suite(data).trials()[0]
    assert trial.env_kwargs == {"obs_type": "pixels_agent_pos"} and ":pixels_agent_pos|" in trial.key
    state = parse_suite(_suite(env="PushT-v0", obs_type="state", methods=["bc"], budgets={})).trials()[0]
    assert state.obs_type is None and state.key == parse_suite(_suite(env="PushT-v0", methods=["bc"], budgets={})).trials()[0].key


def test_trials_expand_the_grid_with_stable_keys():
    suite = parse_suite(_suite(demos=[1, 3], budgets={"bc": [{"bc_epochs": 2}, {"name": "long", "bc_epochs": 9}]},
                               methods=["bc"]) | {"seeds": [0, 1]})
    trials = suite.trials()
    assert len(trials) == 2 * 2 * 2  # demos x budgets x seeds
    assert len({t.key for t in trials}) == len(trials)
    assert {t.budget_name for t in trials} == {"bc_epochs=2", "long"}
    again = parse_suite(_suite(demos=[1, 3], budgets={"bc": [{"bc_epochs": 2}, {"name": "long", "bc_epochs": 9}]},
                               methods=["bc"]) | {"seeds": [0, 1], "name": "other"})
    assert [t.key for t in again.trials()] == [t.key for t in trials]  # the key is the content, not the suite


def test_the_cli_refuses_a_bad_suite_before_any_work(tmp_path, capsys):
    from il_toolkit.bench.cli import main

    suite = tmp_path / "bad.toml"
    suite.write_text('name = "bad"\n[[tasks]]\nenv = "CartPole-v1"\nmethods = ["bc", "ppo"]\n')
    results = tmp_path / "r.jsonl"
    assert main(["run", str(suite), "--results", str(results)]) == 2
    assert ("unknown method 'ppo'; known methods: bc, dagger, ensemble_dagger, flow_bc, flow_chunked, "
            "flow_estimated_state, flow_instructed, gail, hg_dagger, thrifty_dagger, vla") in capsys.readouterr().err
    assert not results.exists()


# -- the results file ----------------------------------------------------------------------
def test_a_truncated_last_line_is_read_up_to_and_reported(tmp_path):
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append({"kind": "trial", "key": "a", "status": "ok"})
    store.append({"kind": "trial", "key": "b", "status": "ok"})
    with store.path.open("ab") as f:
        f.write(b'{"kind": "trial", "key": "c", "sta')  # a write cut short
    report = store.read()
    assert [r["key"] for r in report.records] == ["a", "b"]
    assert len(report.problems) == 1 and "line 3" in report.problems[0] and "truncated" in report.problems[0]
    store.append({"kind": "trial", "key": "d", "status": "ok"})  # starts on a fresh line
    report = store.read()
    assert [r["key"] for r in report.records] == ["a", "b", "d"]
    assert len(report.problems) == 1 and "not valid JSON" in report.problems[0]


def test_nan_is_written_as_null(tmp_path):
    store = ResultsFile(tmp_path / "r.jsonl")
    store.append({"kind": "trial", "key": "a", "score": float("nan")})
    assert json.loads(store.path.read_text())["score"] is None


def _append_many(path: str, writer: int, n: int) -> None:
    store = ResultsFile(path)
    for i in range(n):
        store.append({"kind": "trial", "key": f"{writer}-{i}", "status": "ok", "payload": "x" * (20_000 + 97 * i)})


def test_two_processes_appending_never_interleave_lines(tmp_path):
    path = str(tmp_path / "r.jsonl")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_many, args=(path, w, 60)) for w in range(2)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    report = ResultsFile(path).read()
    assert report.problems == []
    assert sorted(r["key"] for r in report.records) == sorted(f"{w}-{i}" for w in range(2) for i in range(60))


# -- statistics and the leaderboard --------------------------------------------------------
def test_iqm_and_bootstrap_interval():
    assert iqm([0, 1, 2, 3, 4, 5, 6, 7]) == pytest.approx(3.5)  # mean of the middle half
    assert iqm([0, 0, 0, 100]) == pytest.approx(0.0)  # one outlier of four is trimmed
    assert iqm([1.0, 2.0]) == pytest.approx(1.5)
    values = np.random.default_rng(0).normal(0.5, 0.1, 10)
    low, high = bootstrap_ci(values)
    assert values.min() <= low < values.mean() < high <= values.max()
    assert bootstrap_ci(values) == bootstrap_ci(values)  # seeded
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert summarize([None, 0.5, 1.5])["n"] == 2 and summarize([None])["mean"] is None
    iqm_low, iqm_high = bootstrap_ci(values, statistic="iqm")
    assert iqm_low <= iqm(values) <= iqm_high
    with pytest.raises(ValueError, match="mean.*iqm"):
        bootstrap_ci(values, statistic="median")


def test_across_tasks_matrix_is_stratified_by_task():
    """rliable's stratified bootstrap resamples runs within each task: two tasks far apart still
    give an interval around their joint mean, never one task's own level."""
    matrix = np.array([[0.1, 0.9], [0.12, 0.92], [0.08, 0.88], [0.11, 0.91]])
    stats = summarize_tasks(matrix)
    assert stats["runs"] == 4 and stats["tasks"] == 2
    assert stats["mean"] == pytest.approx(matrix.mean())
    low, high = stats["mean_ci"]
    assert 0.45 < low <= stats["mean"] <= high < 0.55  # an unstratified bootstrap could draw one task only
    with pytest.raises(ValueError, match="runs, tasks"):
        summarize_tasks(np.array([0.1, 0.2]))


def _synthetic_records():
    reference = {"kind": "reference", "key": "il_toolkit/PushT-v0|eval1000000x4", "env_id": "il_toolkit/PushT-v0", "eval_seed": 1_000_000,
                 "eval_episodes": 4, "expert_name": "pusht",
                 "expert": {"aggregates": {"mean_return": 40.0, "pc_success": 100.0, "avg_max_reward": 1.0}},
                 "random": {"aggregates": {"mean_return": 1.0, "pc_success": 0.0, "avg_max_reward": 0.1}}}
    records = [reference]
    rng = np.random.default_rng(0)
    for method, level in (("bc", 0.6), ("dagger", 0.8), ("flow_bc", 0.3)):
        for n_demos in (5, 20):
            for seed in range(4):
                score = level * (n_demos / 20) ** 0.3 + rng.normal(0, 0.05)
                records.append({
                    "kind": "trial", "status": "ok", "key": f"{method}|{n_demos}|{seed}", "env_id": "il_toolkit/PushT-v0",
                    "method": method, "budget_name": "default", "seed": seed, "n_demos": n_demos, "score": "max_reward",
                    "eval_seed": 1_000_000, "eval_episodes": 4,
                    "normalized_score": score, "pc_success": 100 * score, "avg_max_reward": 0.1 + 0.9 * score,
                    "mean_return": 40 * score, "train_seconds": 10.0 * (1 + seed), "expert_labels": 100 * n_demos,
                    "latency_ms": {"mean": {"bc": 0.2, "dagger": 0.25, "flow_bc": 3.0}[method]},
                })
    records.append(dict(records[-1], status="failed"))  # failed trials are not ranked
    return records


def test_leaderboard_ranks_by_mean_score_with_iqm_and_interval():
    from il_toolkit.bench.leaderboard import build_boards

    records = _synthetic_records()
    (board,) = build_boards(records)
    assert sorted(board.rows_by_demos) == [5, 20]
    rows = board.rows_by_demos[20]
    assert [r.method for r in rows] == ["dagger", "bc", "flow_bc"]
    dagger = rows[0]
    scores = [r["normalized_score"] for r in records if r.get("key", "").startswith("dagger|20|")]
    assert dagger.score["mean"] == pytest.approx(np.mean(scores))
    assert dagger.score["iqm"] == pytest.approx(np.mean(sorted(scores)[1:3]))
    assert dagger.score["ci_low"] <= dagger.score["mean"] <= dagger.score["ci_high"]
    assert dagger.seeds == [0, 1, 2, 3]
    assert board.reference is records[0]  # matched on env, evaluation seeds and episodes


def test_across_tasks_aggregates_each_method_over_the_tasks_it_ran():
    from il_toolkit.bench.leaderboard import across_tasks, build_boards

    records = _synthetic_records()
    second = [dict(r, env_id="il_toolkit/AlohaTransferCube-v0", key="aloha|" + r["key"], normalized_score=0.5)
              for r in records if r.get("kind") == "trial" and r["method"] != "flow_bc" and r["seed"] < 3]
    boards = build_boards(records + second)
    lines = {line.method: line for line in across_tasks(boards)}
    assert set(lines) == {"bc", "dagger"}  # flow_bc ran on one task only
    dagger = lines["dagger"]
    assert dagger.seeds == [0, 1, 2] and len(dagger.tasks) == 2  # seeds both tasks have
    pusht = [r["normalized_score"] for r in records if r.get("key", "").startswith("dagger|20|") and r["seed"] < 3]
    assert dagger.stats["mean"] == pytest.approx(np.mean(pusht + [0.5] * 3))  # the largest demonstration budget


def test_leaderboard_pages_keep_published_figures_apart(tmp_path):
    from il_toolkit.bench.leaderboard import write_leaderboard

    store = ResultsFile(tmp_path / "results.jsonl")
    for record in _synthetic_records():
        store.append(record)
    with store.path.open("ab") as f:
        f.write(b'{"kind": "tri')
    written = write_leaderboard(store.path, tmp_path / "board")
    assert written.n_trials == 24 and len(written.plots) == 4 and all(p.stat().st_size > 10_000 for p in written.plots)
    assert written.problems and "truncated" in written.problems[0]
    md = written.markdown.read_text()
    section = md[md.index("## il_toolkit/PushT-v0"):]
    ours, _, rest = section.partition("Published figures (not ranked)")
    assert "| 1 | dagger |" in ours and "(published)" not in ours
    assert "Diffusion Policy (state) (published)" in rest and "0.95 best / 0.91 last-10 mean" in rest
    assert "ACT (published)" in rest and "86-90%" in rest and "human demonstrations" in rest
    assert "truncated" in md
    page = written.html.read_text()
    assert page.count("data:image/png;base64,") == 4 and 'class="anchors"' in page
    assert "## Across tasks" not in md  # one task: nothing to aggregate across


# -- end to end ------------------------------------------------------------------------------
def _run(tmp_path, data, **kwargs):
    from il_toolkit.bench.runner import run_suite

    suite = parse_suite(data)
    return run_suite(suite, tmp_path / "results.jsonl", workdir=tmp_path / "work", progress=False, **kwargs)


def test_a_tiny_cartpole_suite_end_to_end_then_skips_and_redoes(tmp_path):
    summary = _run(tmp_path, TINY)
    assert (summary.n_ok, summary.n_failed, summary.n_skipped) == (3, 0, 0)
    store = ResultsFile(tmp_path / "results.jsonl")
    report = store.read()
    trials = {t["method"]: t for t in report.trials()}
    assert set(trials) == {"bc", "dagger", "gail"}
    (reference,) = report.references()
    assert reference["expert"]["aggregates"]["mean_return"] == 500.0
    for method, t in trials.items():
        assert len(t["episodes"]) == 3 and [e["seed"] for e in t["episodes"]] == [1_000_000, 1_000_001, 1_000_002]
        expected = (t["mean_return"] - reference["random"]["aggregates"]["mean_return"]) / (
            500.0 - reference["random"]["aggregates"]["mean_return"])
        assert t["normalized_score"] == pytest.approx(expected)
        assert t["train_seconds"] > 0 and t["eval_seconds"] > 0 and t["latency_ms"]["n_calls"] == sum(
            e["length"] for e in t["episodes"])
        assert t["versions"]["torch"] and "git_revision" in t and 0 <= t["pc_success"] <= 100
        assert (Path(t["policy_path"]) / "model.safetensors").exists()
    assert trials["bc"]["expert_labels"] == 500  # one LQR demonstration of 500 steps
    assert trials["dagger"]["expert_labels"] > 500  # plus the states DAgger asked about
    assert report.records[-1]["kind"] == "run"

    again = _run(tmp_path, TINY)  # everything is done: nothing runs
    assert (again.n_ok, again.n_skipped) == (0, 3)

    # an interrupted trial (its record never written, its run directory half there) is redone
    lines = store.path.read_text().splitlines(keepends=True)
    dagger_line = next(i for i, line in enumerate(lines) if '"method": "dagger"' in line and '"kind": "trial"' in line)
    store.path.write_text("".join(lines[:dagger_line] + lines[dagger_line + 1:]))
    third = _run(tmp_path, TINY)
    assert (third.n_ok, third.n_skipped) == (1, 2)
    redone = {t["method"]: t for t in ResultsFile(tmp_path / "results.jsonl").read().trials()}["dagger"]
    assert redone["episodes"] == trials["dagger"]["episodes"]  # same seeds, same result


def test_every_method_runs_on_pusht(tmp_path):
    """Every registered method trains, saves, reloads and evaluates on a continuous-action task."""
    data = {"name": "pusht", "seeds": [0], "eval_episodes": 1, "tasks": [{
        "env": "PushT-v0", "demos": [1], "score": "max_reward", "methods": "all", "budgets": {
            "bc": [{"bc_epochs": 1}],
            "dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1}],
            "hg_dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1}],
            "ensemble_dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1,
                                 "dagger_ensemble_size": 2}],
            "thrifty_dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1,
                                "dagger_ensemble_size": 2}],
            "gail": [{"total_timesteps": 256, "ppo_n_steps": 256, "gail_n_envs": 1}],
            "flow_bc": [{"bc_epochs": 1, "flow_d_model": 32, "flow_n_steps": 1}],
            "flow_chunked": [{"flow_steps": 2, "flow_d_model": 32}],
        }}]}
    summary = _run(tmp_path, data)
    state_methods = {m for m in METHOD_REGISTRY.keys() if "state" in METHOD_REGISTRY.metadata(m)["observations"]}
    assert (summary.n_ok, summary.n_failed) == (len(state_methods), 0)
    trials = ResultsFile(tmp_path / "results.jsonl").read().trials()
    assert {t["method"] for t in trials} == state_methods
    assert all(t["normalized_score"] is not None and t["latency_ms"]["mean"] > 0 for t in trials)
    gated = [t for t in trials if t["method"] in ("hg_dagger", "ensemble_dagger", "thrifty_dagger")]
    assert all({"context_switches", "expert_share", "interventions"} <= set(t["train_extra"]) for t in gated)


@pytest.mark.slow
def test_pixel_observations_and_aloha_run_end_to_end(tmp_path):
    data = {"name": "pixels", "seeds": [0], "eval_episodes": 1, "tasks": [
        {"env": "PushT-v0", "obs_type": "pixels_agent_pos", "demos": [1], "score": "max_reward", "methods": "all",
         "budgets": {"flow_bc": [{"bc_epochs": 1, "flow_d_model": 32, "flow_n_steps": 1}],
                     "flow_chunked": [{"flow_steps": 2, "flow_d_model": 32}],
                     "flow_estimated_state": [{"flow_steps": 2, "estimator_steps": 2}],
                     "vla": [{"vla_steps": 2, "batch_size": 8}]}},
        {"env": "AlohaTransferCube-v0", "demos": [1], "score": "max_reward", "methods": ["bc", "dagger"],
         "budgets": {"bc": [{"bc_epochs": 1}], "dagger": [{"dagger_iterations": 1, "dagger_episodes_per_iter": 1, "bc_epochs": 1}]}},
    ]}
    summary = _run(tmp_path, data)
    assert (summary.n_ok, summary.n_failed) == (6, 0)
    trials = ResultsFile(tmp_path / "results.jsonl").read().trials()
    assert {t["obs_type"] for t in trials if t["env_id"] == "il_toolkit/PushT-v0"} == {"pixels_agent_pos"}
    assert {t["dataset_id"] for t in trials if t["env_id"] == "il_toolkit/PushT-v0"} == {
        "il-bench/pusht-v0-pixels-agent-pos-expert-s0-n1-v0"}


def test_datasets_are_reused_or_refused():
    from il_toolkit.bench.trial import ensure_dataset
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.minari_io import DatasetError, dataset_metadata, open_dataset

    name, seconds = ensure_dataset("il_toolkit/CartPole-v1", 7, 2)
    assert name == "il-bench/cartpole-v1-expert-s7-n2-v0" and seconds > 0
    meta = dataset_metadata(open_dataset(name))
    assert meta["il_toolkit_seeds"] == [70_000, 70_001] and meta.get("il_toolkit_complete", True)
    assert ensure_dataset("il_toolkit/CartPole-v1", 7, 2) == (name, 0.0)  # reused
    collect_dataset("CartPole-v1", "il-bench/cartpole-v1-expert-s8-n2-v0", 3, seed=80_000, progress=False)  # someone else's
    with pytest.raises(DatasetError, match="holds 3 complete episodes, not the 2 asked for; delete it"):
        ensure_dataset("il_toolkit/CartPole-v1", 8, 2)
    collect_dataset("CartPole-v1", "il-bench/cartpole-v1-expert-s9-n2-v0", 2, progress=False)  # from seed 0
    with pytest.raises(DatasetError, match="first seed 0 \\(asked: 90000\\)"):
        ensure_dataset("il_toolkit/CartPole-v1", 9, 2)


def test_a_failing_trial_is_recorded_and_retried(tmp_path, monkeypatch):
    from il_toolkit.bench import adapters

    def broken(request):
        raise RuntimeError("out of luck")

    monkeypatch.setattr(adapters, "train_bc", broken)
    monkeypatch.setitem(METHOD_REGISTRY._resolved, "bc", broken)
    data = _suite(methods=["bc"], budgets={"bc": [{"bc_epochs": 1}]})
    summary = _run(tmp_path, data)
    assert (summary.n_ok, summary.n_failed) == (0, 1)
    (failed,) = ResultsFile(tmp_path / "results.jsonl").read().trials(status="failed")
    assert failed["error"] == "RuntimeError: out of luck"
    monkeypatch.undo()
    assert _run(tmp_path, data).n_ok == 1  # retried, not skipped


# -- slower checks -----------------------------------------------------------------------------
def _per_trial(path: Path) -> dict[str, tuple]:
    return {t["key"]: (json.dumps(t["episodes"]), t["expert_labels"]) for t in ResultsFile(path).read().trials()}


@pytest.mark.slow
def test_two_local_workers_give_the_sequential_results(tmp_path):
    _run(tmp_path / "seq", TINY)
    summary = _run(tmp_path / "pool", TINY, workers=2)
    assert summary.n_ok == 3
    assert _per_trial(tmp_path / "pool" / "results.jsonl") == _per_trial(tmp_path / "seq" / "results.jsonl")


@pytest.mark.slow
def test_a_local_ray_instance_gives_the_sequential_results(tmp_path):
    pytest.importorskip("ray")
    _run(tmp_path / "seq", TINY)
    summary = _run(tmp_path / "ray", TINY, executor="ray", workers=2)
    assert summary.n_ok == 3
    assert _per_trial(tmp_path / "ray" / "results.jsonl") == _per_trial(tmp_path / "seq" / "results.jsonl")


def test_the_html_page_renders_in_headless_chromium(tmp_path):
    from il_toolkit.bench.leaderboard import write_leaderboard

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium: make test installs it as root (apt-get install chromium)")
    store = ResultsFile(tmp_path / "results.jsonl")
    for record in _synthetic_records():
        store.append(record)
    page = write_leaderboard(store.path, tmp_path / "board").html
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-images-decoded="4"' in dom.stdout  # the embedded plots decoded in the browser
    assert "Diffusion Policy (state) (published)" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] > 1000 and pixels.std() > 0.05  # not blank
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50  # text, tables, plots


@pytest.mark.slow
def test_each_trial_can_log_to_wandb_grouped_by_suite(tmp_path, monkeypatch):
    from il_toolkit.bench.runner import log_trial_to_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    record = {"key": "il_toolkit/CartPole-v1|bc|d1|s0|x|abc", "status": "ok", "env_id": "il_toolkit/CartPole-v1",
              "method": "bc", "seed": 0, "n_demos": 1, "budget_name": "x", "budget": {}, "eval_episodes": 3,
              "eval_seed": 1_000_000, "pc_success": 100.0, "avg_max_reward": 1.0, "mean_return": 500.0,
              "normalized_score": 1.0, "train_seconds": 1.0, "eval_seconds": 0.5, "expert_labels": 500,
              "latency_ms": {"mean": 0.3}}
    log_trial_to_wandb(record, "tiny", tmp_path)
    (run_dir,) = list((tmp_path / "wandb").glob("offline-run-*"))
    assert any(run_dir.glob("*.wandb"))


def test_a_second_run_on_one_results_file_is_refused_while_the_first_runs(tmp_path):
    from il_toolkit.bench.runner import ResultsBusyError, _results_run_lock

    results = tmp_path / "results.jsonl"
    with _results_run_lock(results):
        with pytest.raises(ResultsBusyError, match="another il-bench run"):
            _run(tmp_path, TINY)
