"""One command line: both spellings of every flag, suggestions for near misses, one error path."""

from __future__ import annotations

import json

import pytest

from il_toolkit.cli import main


def test_every_flag_takes_both_spellings(capsys):
    assert main(["train", "bc", "--bc-epochs", "3", "--no-task-frame", "--output-dir", "x", "--print_config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["bc_epochs"], config["task_frame"], config["output_dir"]) == (3, False, "x")
    assert main(["train", "bc", "--no_task_frame", "--task-frame", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["task_frame"] is True


def test_a_near_miss_names_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "dagger", "--env", "CartPole-v1", "--dagger-varient", "hg_dagger"])
    assert "did you mean --dagger_variant" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "run", "quick", "--workerz", "2"])
    assert "did you mean --workers" in capsys.readouterr().err


def test_bench_help_is_il_bench_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0 and "usage: il-toolkit bench" in capsys.readouterr().out


def test_a_config_file_round_trips_and_flags_override_it(tmp_path, capsys):
    assert main(["train", "dagger", "--dagger_iterations", "3", "--print_config"]) == 0
    path = tmp_path / "config.json"
    path.write_text(capsys.readouterr().out)
    assert main(["train", "dagger", "--config", str(path), "--bc_epochs", "4", "--print_config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["dagger_iterations"], config["bc_epochs"]) == (3, 4)
    assert main(["train", "dagger", "--config", str(tmp_path / "missing.json")]) == 2
    assert "no config file" in capsys.readouterr().err
    path.write_text('{"bc_epoch": 3}')
    assert main(["train", "dagger", "--config", str(path), "--print_config"]) == 2
    assert "unknown ILConfig fields ['bc_epoch']" in capsys.readouterr().err


def test_print_config_shows_the_interactive_defaults_of_the_datasets_env(capsys):
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-print-config-v0", 1, progress=False)
    assert main(["train", "dagger", "--dataset", "tests/pusht-print-config-v0", "--dagger_variant", "hg_dagger",
                 "--bc_epochs", "7", "--print_config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["policy_type"], config["bc_epochs"], config["dagger_episodes_per_iter"]) == ("flow", 7, 8)


def test_python_m_scripts_report_user_errors_in_one_line(capsys):
    from il_toolkit.train.il.cli import main_dagger

    assert main_dagger(["--env", "Nope-v0"], prog="python -m il_toolkit.train.il.dagger") == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m il_toolkit.train.il.dagger: error: unknown env id") and "Traceback" not in err
    assert main_dagger(["--dagger_intervention_threshold", "5", "--env", "PushT-v0"]) == 2
    assert "dagger_intervention_threshold must be in (0, 2]" in capsys.readouterr().err


def test_a_saved_policy_is_an_expert_for_collect_and_dagger(tmp_path, capsys):
    from stable_baselines3 import PPO

    from il_toolkit.envs import make_env
    from il_toolkit.policies import SB3Policy
    from il_toolkit.train.datasets.minari_io import load_demonstrations

    env = make_env("CartPole-v1")
    expert_dir = SB3Policy.from_model(PPO("MlpPolicy", env, seed=0, device="cpu")).save(tmp_path / "rl_expert")
    assert main(["collect", "--env", "CartPole-v1", "--expert", str(expert_dir), "--episodes", "2",
                 "--dataset-id", "tests/saved-expert-v0", "--overwrite", "--no-progress"]) == 0
    assert len(load_demonstrations("tests/saved-expert-v0")) == 2
    assert main(["train", "dagger", "--env", "CartPole-v1", "--expert", str(expert_dir), "--dagger_iterations", "1",
                 "--dagger_episodes_per_iter", "1", "--bc_epochs", "1", "--eval_episodes", "1", "--no_wandb",
                 "--no_progress", "--output_dir", str(tmp_path / "dagger")]) == 0
    capsys.readouterr()
    (tmp_path / "model.zip").write_bytes(b"PK")
    assert main(["collect", "--env", "CartPole-v1", "--expert", str(tmp_path / "model.zip"), "--episodes", "1",
                 "--dataset-id", "tests/zip-expert-v0"]) == 2
    assert "holds pickles" in capsys.readouterr().err
    pusht_policy = tmp_path / "pusht"
    from il_toolkit.policies.mlp import MLPPolicy

    pusht = make_env("il_toolkit/PushT-v0")
    MLPPolicy(pusht.observation_space, pusht.action_space).save(pusht_policy)
    assert main(["collect", "--env", "CartPole-v1", "--expert", str(pusht_policy), "--episodes", "1",
                 "--dataset-id", "tests/wrong-expert-v0"]) == 2
    assert "trained on il_toolkit/CartPole-v1" in capsys.readouterr().err
