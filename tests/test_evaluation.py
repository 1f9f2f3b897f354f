import json

import numpy as np
import pytest

from il_toolkit.envs import make_env
from il_toolkit.evaluation import evaluate, evaluate_checkpoint, normalized_score, reference_returns
from il_toolkit.experts import make_expert
from il_toolkit.policies import FunctionPolicy, SpaceMismatchError


def test_records_and_aggregates_for_a_known_policy():
    env = make_env("CartPole-v1")
    always_left = FunctionPolicy(lambda s: 0, env.observation_space, env.action_space)
    result = evaluate(always_left, env, n_episodes=4, seed=10)
    assert [r.seed for r in result.episodes] == [10, 11, 12, 13]
    assert all(not r.success and r.length < 20 and r.max_reward == 1.0 for r in result.episodes)
    assert result.aggregates["pc_success"] == 0.0
    assert result.aggregates["mean_return"] == pytest.approx(np.mean([r.sum_reward for r in result.episodes]))


def test_success_percentage_is_the_exact_count_over_episodes():
    from il_toolkit.evaluation import EpisodeRecord, EvalResult

    episodes = [EpisodeRecord(seed=i, sum_reward=0.0, max_reward=0.0, success=i < 114, length=1) for i in range(200)]
    assert EvalResult("env", episodes, 1.0).aggregates["pc_success"] == 57.0  # 100 * mean gave 56.99999999999999


def test_normalised_score_is_one_for_the_expert_and_zero_for_random():
    assert normalized_score(50.0, 0.0, 100.0) == 0.5
    refs = reference_returns("CartPole-v1", 5, seed=123)
    assert refs["expert_return"] == 500.0 and refs["random_return"] < 50
    result = evaluate(make_expert("CartPole-v1"), "CartPole-v1", n_episodes=5, seed=123, references=refs)
    assert result.aggregates["normalized_score"] == pytest.approx(1.0)


def test_parallel_evaluation_gives_the_same_records(tmp_path):
    path = make_expert("CartPole-v1").save(tmp_path / "lqr")
    single = evaluate_checkpoint(path, "CartPole-v1", n_episodes=4, seed=5)
    double = evaluate_checkpoint(path, "CartPole-v1", n_episodes=4, seed=5, num_envs=2)
    assert single.episodes == double.episodes


def test_video_of_chosen_episodes(tmp_path):
    path = make_expert("CartPole-v1").save(tmp_path / "lqr")
    evaluate_checkpoint(path, "CartPole-v1", n_episodes=2, seed=0, video_dir=tmp_path / "video", video_episodes=[1])
    videos = list((tmp_path / "video").glob("*.mp4"))
    assert [v.name for v in videos] == ["episode_seed1.mp4"] and videos[0].stat().st_size > 1000


def test_policy_for_another_env_is_refused():
    env = make_env("PushT-v0")
    cartpole_expert = make_expert("CartPole-v1")
    with pytest.raises(SpaceMismatchError, match="evaluate the policy on the env it was trained on"):
        evaluate(cartpole_expert, env, n_episodes=1)


def test_eval_cli_writes_json(tmp_path, capsys):
    from il_toolkit.cli import main

    path = make_expert("CartPole-v1").save(tmp_path / "lqr")
    assert main(["eval", "--policy", str(path), "--env", "CartPole-v1", "--episodes", "3", "--no-progress",
                 "--output", str(tmp_path / "e.json")]) == 0
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["aggregates"]["normalized_score"] == pytest.approx(1.0)
    assert {"sum_reward", "max_reward", "success", "seed"} <= set(data["episodes"][0])


def test_random_reference_is_reproducible_and_leaves_the_env_alone():
    from il_toolkit.policies import RandomPolicy

    env = make_env("PushT-v0")
    a = RandomPolicy(env.observation_space, env.action_space, seed=3)
    b = RandomPolicy(env.observation_space, env.action_space, seed=3)
    obs = np.zeros((4, 5))
    np.testing.assert_array_equal(a.predict(obs)[0], b.predict(obs)[0])
    assert env.action_space.np_random is not a._space.np_random


def test_a_training_state_directory_points_to_its_policy(tmp_path, capsys):
    """`train flow` keeps RUN/checkpoint/ (trainer state + policy/) beside RUN/best/: name both."""
    from il_toolkit.cli import main

    run = tmp_path / "run"
    make_expert("CartPole-v1").save(run / "checkpoint" / "policy")
    (run / "checkpoint" / "trainer_state.json").write_text("{}")
    assert main(["eval", "--policy", str(run / "checkpoint"), "--env", "CartPole-v1", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert f"it is a training run's resumable state (the trainer's state beside a policy): pass its policy " \
           f"'{run / 'checkpoint' / 'policy'}'" in err and "best" not in err
    make_expert("CartPole-v1").save(run / "best")
    assert main(["eval", "--policy", str(run / "checkpoint"), "--env", "CartPole-v1", "--episodes", "1"]) == 2
    assert f"or the run's trained policy '{run / 'best'}'" in capsys.readouterr().err


def _untrained_flow_policy(path):
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    env = make_env("il_toolkit/PushT-v0")
    policy = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", env.observation_space, env.action_space,
                                       horizon=4, n_obs_steps=1)
    return policy.save(path)


def test_eval_sets_a_flow_policys_ode_steps_and_solver(tmp_path, capsys, monkeypatch):
    from il_toolkit import evaluation
    from il_toolkit.cli import main

    path = _untrained_flow_policy(tmp_path / "flow")
    used = []
    original = evaluation.evaluate

    def recording(policy, *args, **kwargs):
        used.append((policy.n_steps, policy.solver))
        return original(policy, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", recording)
    argv = ["eval", "--policy", str(path), "--env", "il_toolkit/PushT-v0", "--episodes", "1", "--seed", "0",
            "--no-normalize", "--no-progress"]
    assert main(argv + ["--ode-steps", "2", "--solver", "rk4"]) == 0
    assert used == [(2, "rk4")] and "[flow policy: 2 ODE steps, solver rk4]" in capsys.readouterr().out
    assert main(argv + ["--ode_steps", "1"]) == 0 and used[-1] == (1, "euler")  # the saved solver, both spellings
    assert main(argv) == 0 and used[-1] == (10, "euler")  # the saved settings


def test_eval_refuses_ode_settings_for_a_policy_without_an_ode(tmp_path, capsys):
    from il_toolkit.cli import ODE_SOLVERS, main
    from il_toolkit.model.flow import SOLVERS

    assert ODE_SOLVERS == SOLVERS
    path = make_expert("CartPole-v1").save(tmp_path / "lqr")
    assert main(["eval", "--policy", str(path), "--env", "CartPole-v1", "--solver", "midpoint", "--no-normalize"]) == 2
    assert f"and '{path}' is a 'cartpole_lqr_expert' policy, which they do not reach: drop them" \
        in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(path), "--env", "CartPole-v1", "--solver", "heun"])
    assert "invalid choice: 'heun'" in capsys.readouterr().err
