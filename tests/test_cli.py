import json
import subprocess
import sys

import pytest

from il_toolkit.cli import main


def test_envs_lists_spaces(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "il_toolkit/CartPole-v1" in out and "obs Box(4,) float32; action Discrete(2)" in out
    assert "obs_type=pixels: obs Box(96, 96, 3) uint8" in out


def test_collect_train_eval_round_trip(tmp_path, capsys):
    assert main(["collect", "--env", "CartPole-v1", "--episodes", "3", "--dataset-id", "cli/cartpole-v0", "--no-progress"]) == 0
    assert main(["collect", "--env", "CartPole-v1", "--episodes", "3", "--dataset-id", "cli/cartpole-v0", "--no-progress",
                 "--if-missing"]) == 0
    assert "already complete (3 episodes" in capsys.readouterr().out
    out_dir = tmp_path / "bc"
    assert main(["train", "bc", "--dataset", "cli/cartpole-v0", "--bc_epochs", "2", "--eval_episodes", "2",
                 "--output_dir", str(out_dir), "--no_wandb", "--no_progress"]) == 0
    assert (out_dir / "best" / "model.safetensors").exists()
    capsys.readouterr()
    assert main(["eval", "--policy", str(out_dir / "best"), "--env", "CartPole-v1", "--episodes", "2",
                 "--output", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["aggregates"]["n_episodes"] == 2


@pytest.mark.parametrize("argv,message", [
    (["eval", "--policy", "/nonexistent", "--env", "CartPole-v1"], "does not exist"),
    (["collect", "--env", "CartPol-v1", "--episodes", "1", "--dataset-id", "cli/unused-v0"], "unknown env id 'CartPol-v1'"),
    (["collect", "--env", "CartPole-v1", "--expert", "nobody", "--episodes", "1", "--dataset-id", "cli/unused-v0"], "unknown expert 'nobody'"),
])
def test_bad_input_exits_2_with_a_clear_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_seed_flag_spellings_are_accepted():
    from il_toolkit.train.il.cli import build_bc_parser as build_parser

    args = build_parser().parse_args(
        ["--env", "CartPole-v1", "--bc_epochs", "100", "--batch_size", "64", "--learning_rate", "1e-4", "--output_dir", "./output/bc"]
    )
    assert (args.env, args.bc_epochs, args.batch_size, args.learning_rate, args.output_dir) == ("CartPole-v1", 100, 64, 1e-4, "./output/bc")


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "il_toolkit.train.il.behavioral_cloning", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--env", "--dataset", "--bc_epochs", "--batch_size", "--learning_rate", "--output_dir", "--model_path"):
        assert flag in out


@pytest.mark.parametrize("value,message", [
    ("a,b", "argument --video-episodes: expects comma-separated episode indices such as 0,3,7, got 'a,b'"),
    ("0,-2", "argument --video-episodes: episode indices are 0 or more, got -2"),
])
def test_video_episodes_are_checked_when_parsed(value, message, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--policy", "/nonexistent", "--env", "CartPole-v1", f"--video-episodes={value}"])
    assert message in capsys.readouterr().err


def test_video_episodes_parse_into_indices():
    from il_toolkit.cli import build_parser

    args = build_parser().parse_args(["eval", "--policy", "p", "--env", "CartPole-v1", "--video-episodes", "0,3,,7"])
    assert args.video_episodes == [0, 3, 7]
    assert build_parser().parse_args(["eval", "--policy", "p", "--env", "CartPole-v1"]).video_episodes == [0]


def test_a_video_of_an_episode_not_evaluated_is_refused_before_anything_runs(tmp_path, capsys):
    assert main(["eval", "--policy", "/nonexistent", "--env", "CartPole-v1", "--episodes", "3", "--video-dir",
                 str(tmp_path), "--video-episodes", "0,5"]) == 2
    assert "--video-episodes 5 is beyond the 3 episodes evaluated (indices 0 to 2)" in capsys.readouterr().err
