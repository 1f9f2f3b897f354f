"""Teleoperation, headless: SDL's dummy video driver and events injected through the real
pygame queue (``ScriptedEventSource`` posts them with ``pygame.event.post``)."""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pytest

from il_toolkit.teleop import (
    HUMAN_ACTED,
    HumanExpert,
    ScriptedEventSource,
    TeleopClosed,
    TeleopError,
    human_acted,
    key,
    load_human_steps,
    mouse_button,
    mouse_motion,
    run_teleop,
    window_to_action,
)
from il_toolkit.teleop.controls import pygame
from il_toolkit.train.datasets import minari_io as io

PUSHT = "il_toolkit/PushT-v0"
SHORT = {"max_episode_steps": 12}  # PushT episodes cut at 12 steps keep the test fast
WINDOW = 256  # a 256-px window: board = 2 * window pixel


@pytest.fixture(autouse=True)
def datasets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    yield
    pygame.display.quit()


def motion_script(positions):
    return [[mouse_motion(x, y)] for x, y in positions]


def teleop(dataset_id, n_episodes, script, **kwargs):
    options = {"fps": 0, "window_size": WINDOW, "engage_radius": None, "pause_s": 0, "env_kwargs": SHORT}
    return run_teleop(PUSHT, dataset_id, n_episodes, events=ScriptedEventSource(script), **{**options, **kwargs})


def test_window_pixels_map_onto_the_board():
    low, high = np.zeros(2), np.full(2, 512.0)
    np.testing.assert_allclose(window_to_action((100, 50), (256, 256), low, high), [200.0, 100.0])
    np.testing.assert_allclose(window_to_action((0, 0), (512, 512), low, high), [0.0, 0.0])
    np.testing.assert_allclose(window_to_action((600, -5), (512, 512), low, high), [512.0, 0.0])  # clipped


def test_pusht_mouse_positions_become_the_recorded_actions():
    rng = np.random.default_rng(0)
    positions = [tuple(p) for p in rng.integers(0, WINDOW, size=(2 * 12, 2))]
    report = teleop("test/pusht-mouse-v0", 2, motion_script(positions))
    assert (report.n_episodes, report.n_steps, report.human_steps, report.closed_early) == (2, 24, 24, False)
    dataset = io.open_dataset("test/pusht-mouse-v0")
    actions = np.concatenate([e.actions for e in dataset.iterate_episodes()])
    np.testing.assert_allclose(actions, 2.0 * np.asarray(positions, dtype=np.float64))
    assert all(flags.all() and len(flags) == 12 for flags in human_acted("test/pusht-mouse-v0"))
    meta = io.dataset_metadata(dataset)
    assert meta["il_toolkit_operator"] == "human" and meta["il_toolkit_expert"] == "human"
    assert meta["il_toolkit_seeds"] == [0, 1] and meta["il_toolkit_complete"] is True
    assert meta["il_toolkit_discarded_episodes"] == []
    # the pusher went where it was told: the next observation's agent position moves towards the target
    episode = next(iter(dataset.iterate_episodes()))
    assert np.linalg.norm(episode.observations[1, :2] - episode.actions[0]) < np.linalg.norm(
        episode.observations[0, :2] - episode.actions[0])


def test_window_closed_mid_episode_discards_that_episode_and_keeps_the_dataset_valid():
    positions = [(40 + i, 60 + i) for i in range(12 + 5)]  # one whole episode, then 5 steps, then QUIT
    report = teleop("test/pusht-closed-v0", 3, motion_script(positions))
    assert report.closed_early and report.n_episodes == 1
    assert report.discarded == [{"seed": 1, "steps": 5, "reason": "window closed mid-episode"}]
    trajectories = io.load_demonstrations("test/pusht-closed-v0")  # the lead's loader reads it
    assert len(trajectories) == 1 and len(trajectories[0].acts) == 12
    meta = io.dataset_metadata(io.open_dataset("test/pusht-closed-v0"))
    assert meta["il_toolkit_discarded_episodes"] == [{"seed": 1, "steps": 5, "reason": "window closed mid-episode"}]
    assert meta["il_toolkit_complete"] is True

    # closed during the very first episode: nothing recorded, no dataset created
    report = teleop("test/pusht-nothing-v0", 2, motion_script([(10, 10)] * 3))
    assert report.n_episodes == 0 and report.path is None
    assert not io.dataset_exists("test/pusht-nothing-v0")


def test_existing_dataset_is_refused_unless_append_or_overwrite():
    positions = [(30, 30)] * 12
    teleop("test/pusht-again-v0", 1, motion_script(positions))
    with pytest.raises(io.DatasetExistsError, match="--append"):
        teleop("test/pusht-again-v0", 1, motion_script(positions))
    report = teleop("test/pusht-again-v0", 1, motion_script(positions), append=True)
    assert report.n_episodes == 1
    assert io.dataset_metadata(io.open_dataset("test/pusht-again-v0"))["il_toolkit_seeds"] == [0, 1]
    teleop("test/pusht-again-v0", 1, motion_script(positions), overwrite=True)
    assert io.dataset_metadata(io.open_dataset("test/pusht-again-v0"))["il_toolkit_seeds"] == [0]


def test_intervene_records_who_acted_and_the_person_overrides_the_policy(tmp_path):
    from il_toolkit.experts.pusht import PushTExpert
    from il_toolkit.policies import load

    policy_dir = PushTExpert().save(tmp_path / "expert")
    takeover = range(4, 8)
    script = []
    for t in range(12):
        events = [mouse_motion(100, 50)]
        if t == takeover.start:
            events.append(mouse_button(True, 100, 50))
        if t == takeover.stop:
            events.append(mouse_button(False, 100, 50))
        script.append(events)
    report = teleop("test/pusht-hg-v0", 1, script, intervene=True, policy=str(policy_dir))
    assert (report.mode, report.human_steps) == ("intervene", len(takeover))
    episode = next(iter(io.open_dataset("test/pusht-hg-v0").iterate_episodes()))
    flags = episode.infos[HUMAN_ACTED]
    np.testing.assert_array_equal(flags, [t in takeover for t in range(12)])
    np.testing.assert_allclose(episode.actions[flags], np.tile([200.0, 100.0], (len(takeover), 1)))
    expert = load(policy_dir)
    for t in np.flatnonzero(~flags):
        np.testing.assert_allclose(episode.actions[t], expert.predict(episode.observations[t])[0], atol=1e-4)
    steps = load_human_steps("test/pusht-hg-v0")
    np.testing.assert_array_equal(steps["step"], list(takeover))
    np.testing.assert_allclose(steps["obs"], episode.observations[list(takeover)])
    meta = io.dataset_metadata(io.open_dataset("test/pusht-hg-v0"))
    assert meta["il_toolkit_teleop_mode"] == "intervene" and meta["il_toolkit_policy"] == str(policy_dir)

    with pytest.raises(TeleopError, match="--policy"):
        teleop("test/pusht-hg2-v0", 1, script, intervene=True)


def test_cartpole_arrow_keys_and_alternating_pushes_with_no_key():
    script = [[key(True, pygame.K_LEFT)], [], [], [key(False, pygame.K_LEFT)], [key(True, pygame.K_RIGHT)],
              [key(False, pygame.K_RIGHT)]] + [[] for _ in range(600)]
    report = run_teleop("CartPole-v1", "test/cartpole-keys-v0", 1, fps=0, pause_s=0,
                        events=ScriptedEventSource(script))
    assert report.n_episodes == 1
    episode = next(iter(io.open_dataset("test/cartpole-keys-v0").iterate_episodes()))
    # held left for polls 0-2, released at poll 3 (idle: alternates from the last action), right at poll 4
    assert episode.actions[:6].tolist() == [0, 0, 0, 1, 1, 0]
    idle = episode.actions[5:]
    assert np.all(idle[1:] != idle[:-1]), "with no key held, pushes alternate"
    assert episode.terminations[-1] or len(episode.actions) == 500


def test_unsupported_action_space_names_the_supported_ones():
    with pytest.raises(TeleopError, match="PushT"):
        from il_toolkit.teleop import scheme_for
        from gymnasium import spaces

        scheme_for(spaces.Box(-1, 1, (14,)), "il_toolkit/AlohaInsertion-v0")


def test_human_expert_labels_dagger_rounds(tmp_path):
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.dagger import DAgger

    env = make_env(PUSHT, max_episode_steps=6)
    positions = [(20 * i, 10 * i) for i in range(1, 7)]
    expert = HumanExpert(env, fps=0, window_size=WINDOW, engage_radius=None,
                         events=ScriptedEventSource(motion_script(positions)))
    config = ILConfig.dagger(dagger_iterations=1, dagger_episodes_per_iter=1, bc_epochs=1,
                             output_dir=str(tmp_path / "dagger"), eval_episodes=1)
    trainer = DAgger(env, expert_policy=expert, config=config, use_wandb=False, progress=False)
    trajectories, stats = trainer.collect_round(0)
    np.testing.assert_allclose(trajectories[0].acts, 2.0 * np.asarray(positions, dtype=np.float64))
    assert stats["round/expert_labels"] == 6 and expert.queries == 6
    with pytest.raises(TeleopClosed):  # the script has run out: the window is closed
        trainer.collect_round(1)
    with pytest.raises(ValueError, match="render_mode"):
        HumanExpert(make_env("CartPole-v1"))


def test_a_person_at_the_controls_gates_hg_dagger(tmp_path):
    """HG-DAgger with a person: they watch every step and label only the steps they hold the button in."""
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.dagger import DAgger

    env = make_env(PUSHT, max_episode_steps=6)
    script = [[mouse_motion(20, 20)], [mouse_motion(30, 30)], [mouse_button(True, 40, 40)],
              [mouse_motion(50, 50, (1, 0, 0))], [mouse_button(False, 60, 60)], [mouse_motion(70, 70)]]
    expert = HumanExpert(env, fps=0, window_size=WINDOW, engage_radius=None, events=ScriptedEventSource(script))
    config = ILConfig.dagger(dagger_variant="hg_dagger", policy_type="mlp", dagger_iterations=1,
                             dagger_episodes_per_iter=1, bc_epochs=1, output_dir=str(tmp_path / "hg"), eval_episodes=1)
    trainer = DAgger(env, expert_policy=expert, config=config, use_wandb=False, progress=False)
    trajectories, stats = trainer.collect_round(0)
    assert stats["round/expert_labels"] == 2 and stats["round/expert_queries"] == 6
    assert stats["round/interventions"] == 1 and stats["round/hand_backs"] == 1
    np.testing.assert_allclose(trajectories[0].acts, 2.0 * np.array([[40, 40], [50, 50]], dtype=np.float64))


def test_cli_teleop_runs_with_injected_events(monkeypatch, capsys):
    from il_toolkit import cli
    from il_toolkit.teleop import session

    positions = [(64, 64)] * 12
    monkeypatch.setattr(session, "default_event_source", lambda: ScriptedEventSource(motion_script(positions)))
    rc = cli.main(["teleop", "--env", "PushT-v0", "--dataset-id", "test/pusht-cli-v0", "--episodes", "2", "--fps", "0",
                   "--env-kwarg", "max_episode_steps=12"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "recorded 1 episodes (12 steps, 12 by you)" in out and "discarded" not in out  # closed between episodes
    assert cli.main(["teleop", "--env", "PushT-v0", "--dataset-id", "test/x-v0", "--intervene"]) == 2
    assert "go together" in capsys.readouterr().err


class InterruptingSource(ScriptedEventSource):
    """Ctrl-C in the terminal after ``n`` polls."""

    def __init__(self, script, n: int) -> None:
        super().__init__(script)
        self.n = n

    def poll(self):
        if self.polls >= self.n:
            raise KeyboardInterrupt
        return super().poll()


def test_ctrl_c_mid_episode_discards_it_and_completes_the_dataset():
    positions = [(50, 50)] * 40
    report = run_teleop(PUSHT, "test/pusht-ctrlc-v0", 3, events=InterruptingSource(motion_script(positions), 12 + 3),
                        fps=0, window_size=WINDOW, engage_radius=None, pause_s=0, env_kwargs=SHORT)
    assert report.n_episodes == 1
    assert report.discarded == [{"seed": 1, "steps": 3, "reason": "interrupted (Ctrl-C) mid-episode"}]
    meta = io.dataset_metadata(io.open_dataset("test/pusht-ctrlc-v0"))
    assert meta["il_toolkit_complete"] is True and meta["il_toolkit_seeds"] == [0]


def test_cartpole_intervene_an_arrow_key_takes_over_from_the_policy(tmp_path):
    from il_toolkit.experts.cartpole import CartPoleLQRExpert
    from il_toolkit.envs import make_env

    policy_dir = CartPoleLQRExpert(make_env("CartPole-v1")).save(tmp_path / "lqr")
    script = [[], [], [key(True, pygame.K_RIGHT)], [], [], [key(False, pygame.K_RIGHT)]] + [[] for _ in range(30)]
    report = run_teleop("CartPole-v1", "test/cartpole-hg-v0", 1, intervene=True, policy=policy_dir, fps=0, pause_s=0,
                        events=ScriptedEventSource(script), env_kwargs={"max_episode_steps": 30})
    assert report.human_steps == 3
    episode = next(iter(io.open_dataset("test/cartpole-hg-v0").iterate_episodes()))
    np.testing.assert_array_equal(np.flatnonzero(episode.infos[HUMAN_ACTED]), [2, 3, 4])
    assert episode.actions[2:5].tolist() == [1, 1, 1]


def test_dagger_trains_end_to_end_with_a_person_as_the_expert(tmp_path):
    import torch
    from minari import MinariDataset

    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.dagger import DAgger

    torch.set_num_threads(1)
    env = make_env(PUSHT, max_episode_steps=6)
    positions = [(30 + 10 * i, 200 - 5 * i) for i in range(6)]
    expert = HumanExpert(env, fps=0, window_size=WINDOW, engage_radius=None,
                         events=ScriptedEventSource(motion_script(positions)))
    config = ILConfig.dagger(dagger_iterations=1, dagger_episodes_per_iter=1, bc_epochs=1, eval_episodes=1,
                             output_dir=str(tmp_path / "dagger"))
    results = DAgger(env, expert_policy=expert, config=config, use_wandb=False, progress=False).train()
    assert results["expert_labels"] == 6
    aggregate = MinariDataset(results["dataset_path"])
    np.testing.assert_allclose(next(iter(aggregate.iterate_episodes())).actions, 2.0 * np.asarray(positions))


def test_no_display_is_a_clear_error_and_records_nothing(tmp_path):
    """Without a screen SDL falls back to an off-screen driver; a session there would record the idle
    controls as a person's demonstrations."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env["MINARI_DATASETS_PATH"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "il_toolkit.cli", "teleop", "--env", "PushT-v0", "--dataset-id",
                           "test/nodisplay-v0", "--episodes", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no display to show the teleoperation window" in done.stderr and "Traceback" not in done.stderr
    assert not any(tmp_path.rglob("*.hdf5")) and not any(tmp_path.rglob("metadata.json"))
