import numpy as np
import pytest

from il_toolkit.envs import make_env
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.minari_io import (
    DatasetError,
    DatasetExistsError,
    load_demonstrations,
    to_arrays,
    to_transitions,
)


@pytest.fixture(scope="module")
def cartpole_dataset():
    collect_dataset("CartPole-v1", "tests/cartpole-lqr-v0", 3, seed=7, progress=False)
    return "tests/cartpole-lqr-v0"


def test_plain_minari_opens_it_with_toolkit_metadata(cartpole_dataset):
    import minari

    dataset = minari.load_dataset(cartpole_dataset)
    assert dataset.total_episodes == 3
    meta = dataset.storage.metadata
    assert meta["il_toolkit_env_id"] == "il_toolkit/CartPole-v1"
    assert meta["il_toolkit_expert"] == "cartpole_lqr"
    assert list(meta["il_toolkit_seeds"]) == [7, 8, 9]
    assert meta["il_toolkit_version"]


def test_episodes_replay_to_their_recorded_returns(cartpole_dataset):
    import minari

    dataset = minari.load_dataset(cartpole_dataset)
    env = make_env("CartPole-v1")
    for episode, seed in zip(dataset.iterate_episodes(), dataset.storage.metadata["il_toolkit_seeds"]):
        obs, _ = env.reset(seed=int(seed))
        np.testing.assert_array_equal(obs, episode.observations[0])
        replayed = sum(env.step(int(a))[1] for a in episode.actions)
        assert replayed == pytest.approx(float(np.sum(episode.rewards)))


def test_loading_gives_imitation_types_and_arrays(cartpole_dataset):
    from imitation.data.types import TrajectoryWithRew, Transitions

    trajectories = load_demonstrations(cartpole_dataset, env=make_env("CartPole-v1"))
    assert all(isinstance(t, TrajectoryWithRew) for t in trajectories)
    assert isinstance(to_transitions(trajectories), Transitions)
    arrays = to_arrays(trajectories)
    n = sum(len(t.acts) for t in trajectories)
    assert arrays["obs"].shape == (n, 4) and arrays["acts"].shape == (n,) and arrays["rews"].shape == (n,)


def test_dataset_from_another_env_is_refused(cartpole_dataset):
    with pytest.raises(DatasetError, match=r"observation space Box\(4,\) float32 does not match env il_toolkit/PushT-v0 observation space Box\(5,\) float64.*collected on il_toolkit/CartPole-v1"):
        load_demonstrations(cartpole_dataset, env=make_env("PushT-v0"))


def test_existing_dataset_id_is_refused_then_overwritten(cartpole_dataset):
    with pytest.raises(DatasetExistsError, match="already exists"):
        collect_dataset("CartPole-v1", cartpole_dataset, 1, progress=False)
    collect_dataset("CartPole-v1", "tests/overwrite-v0", 2, progress=False)
    collect_dataset("CartPole-v1", "tests/overwrite-v0", 1, overwrite=True, progress=False)
    assert len(load_demonstrations("tests/overwrite-v0")) == 1


def test_missing_and_malformed_ids():
    with pytest.raises(DatasetError, match="no local dataset 'tests/missing-v0'.*il-toolkit collect"):
        load_demonstrations("tests/missing-v0")
    with pytest.raises(DatasetError, match="invalid dataset id"):
        collect_dataset("CartPole-v1", "bad id with spaces", 1, progress=False)


def test_corrupt_dataset_is_reported(tmp_path):
    from il_toolkit.train.datasets.minari_io import dataset_path

    collect_dataset("CartPole-v1", "tests/corrupt-v0", 1, progress=False)
    data = dataset_path("tests/corrupt-v0") / "data"
    for f in data.iterdir():
        if f.suffix in (".hdf5", ".h5"):
            f.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="corrupt or incomplete|episode"):
        load_demonstrations("tests/corrupt-v0")


def test_a_collect_killed_before_its_first_episode_is_named_and_can_be_collected_again():
    """kill -9 in the first moments of a collect leaves a directory with an empty metadata.json."""
    from il_toolkit.train.datasets.minari_io import dataset_path

    path = dataset_path("tests/killed-v0")
    path.mkdir(parents=True)
    (path / "metadata.json").write_text("")
    with pytest.raises(DatasetError, match="stopped before it wrote any episode.*--overwrite"):
        load_demonstrations("tests/killed-v0")
    collect_dataset("CartPole-v1", "tests/killed-v0", 1, progress=False)
    assert len(load_demonstrations("tests/killed-v0")) == 1


def test_nan_actions_are_refused_with_rows_named():
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    buffer = EpisodeBuffer(observations=obs)
    for step in range(5):
        action = np.array([np.nan if step == 3 else 0.0], dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
        buffer = buffer.add_step_data({"observation": obs, "action": action, "reward": reward,
                                       "terminated": terminated, "truncated": step == 4, "info": {}})
    minari.create_dataset_from_buffers("tests/nan-v0", [buffer], env=env, algorithm_name="t", author="t",
                                       author_email="t", code_permalink="t", description="t")
    with pytest.raises(DatasetError, match=r"episode 0 has non-finite actions at steps \[3\]"):
        load_demonstrations("tests/nan-v0")


def test_training_in_another_env_than_the_recorded_one_is_said_and_named(cartpole_dataset, capsys):
    """Same spaces, another env: a warning naming both, and what the dataset then lacks is not blamed on it."""
    from il_toolkit.train.datasets.minari_io import load_states
    from il_toolkit.train.il.common import env_for_dataset

    assert env_for_dataset(cartpole_dataset).spec.id == "il_toolkit/CartPole-v1"
    assert "warning" not in capsys.readouterr().err
    env = env_for_dataset(cartpole_dataset, "il_toolkit/CartPoleFixedHorizon-v1")
    assert env.spec.id == "il_toolkit/CartPoleFixedHorizon-v1"
    err = capsys.readouterr().err
    assert err.startswith(f"warning: dataset {cartpole_dataset!r} was recorded on il_toolkit/CartPole-v1, but --env "
                          "names il_toolkit/CartPoleFixedHorizon-v1") and "drop --env" in err
    load_demonstrations(cartpole_dataset, env=env)  # the spaces fit
    with pytest.raises(DatasetError, match="was recorded on il_toolkit/CartPole-v1, not il_toolkit/CartPoleFixedHorizon-v1"
                                           ".*train in the env it was recorded on \\(--env il_toolkit/CartPole-v1, or no "
                                           "--env\\)") as refused:
        load_states(cartpole_dataset, env_id="il_toolkit/CartPoleFixedHorizon-v1")
    assert "--overwrite" not in str(refused.value)
    for own in (None, "CartPole-v1"):  # its own env (or none named): the plain reason
        with pytest.raises(DatasetError, match="has no 'state' info beside its observations"):
            load_states(cartpole_dataset, env_id=own)


def test_train_flow_on_another_envs_dataset_names_the_recorded_env_instead_of_recollecting(tmp_path, capsys):
    from il_toolkit.cli import main

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-state-v0", 1, progress=False)
    assert main(["train", "flow", "--dataset", "tests/pusht-state-v0", "--env", "il_toolkit/PushTTwoTarget-v0",
                 "--output_dir", str(tmp_path / "flow"), "--eval_episodes", "0", "--no_wandb"]) == 2
    err = capsys.readouterr().err
    assert "warning: dataset 'tests/pusht-state-v0' was recorded on il_toolkit/PushT-v0, but --env names " \
           "il_toolkit/PushTTwoTarget-v0" in err
    assert "train in the env it was recorded on (--env il_toolkit/PushT-v0, or no --env)" in err and "--overwrite" not in err
