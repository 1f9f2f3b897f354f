"""Shared fixtures: an isolated Minari directory, offline wandb, single-threaded torch, and
expert demonstrations computed once per test run."""

from __future__ import annotations

import os

import pytest

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


@pytest.fixture(autouse=True, scope="session")
def _isolated_datasets(tmp_path_factory: pytest.TempPathFactory):
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path_factory.mktemp("minari"))
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def cartpole_demos():
    """10 LQR episodes on CartPole-v1 (seeds 0..9) as imitation trajectories."""
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import generate_trajectories

    env = make_env("CartPole-v1")
    return generate_trajectories(make_expert("CartPole-v1", env), env, range(10))
