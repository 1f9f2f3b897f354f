"""A teleoperation session: a person drives the env in a window and every finished
episode is recorded to a Minari dataset (see :mod:`il_toolkit.teleop.recorder` for the
storage and :mod:`il_toolkit.teleop.controls` for the controls).

- Plain teleop: the person chooses every action (PushT: the mouse position; CartPole: the
  arrow keys).
- ``intervene=True`` (HG-DAgger): a learned policy acts; while the person holds the takeover
  control (PushT: mouse button; CartPole: an arrow key) their action is used instead. When
  control returns to the policy its ``reset()`` is called, so chunked policies drop action
  queues planned before the intervention.

Each step: show the current frame (border: red = person, blue = policy), wait for the
next frame at ``fps``, read the events, act, step. Closing the window (or Esc, or Ctrl-C)
ends the session; an episode in progress is discarded and listed in the metadata, and the
dataset keeps every finished episode.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from il_toolkit.train.datasets.minari_io import writer_lock
from il_toolkit.teleop.controls import ControlState, EventSource, PygameEventSource, TeleopError, scheme_for
from il_toolkit.teleop.recorder import TeleopEpisode, TeleopRecorder
from il_toolkit.teleop.window import TeleopWindow, window_size_for


@dataclass(frozen=True)
class TeleopReport:
    dataset_id: str
    env_id: str
    mode: str
    n_episodes: int  # recorded in this session
    n_steps: int
    human_steps: int
    closed_early: bool  # the window was closed before n_episodes were recorded
    discarded: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None  # None: nothing was recorded, no dataset written


def default_event_source() -> EventSource:
    return PygameEventSource()


def _policy_label(policy: Any) -> str | None:
    if policy is None:
        return None
    return str(policy) if isinstance(policy, (str, os.PathLike)) else type(policy).__name__


def _load_policy(policy: Any, env: Any) -> Any:
    from il_toolkit.policies import as_policy, check_spaces, load

    policy = load(policy) if isinstance(policy, (str, os.PathLike)) else policy
    policy = as_policy(policy, env.observation_space, env.action_space)
    check_spaces("policy", policy.observation_space, policy.action_space, env.observation_space, env.action_space,
                 fix="--intervene needs a policy trained on the same env id and obs type (see --env-kwarg)")
    return policy


def run_teleop(
    env_id: str,
    dataset_id: str,
    n_episodes: int = 10,
    *,
    intervene: bool = False,
    policy: Any = None,
    fps: float = 10.0,
    seed: int = 0,
    overwrite: bool = False,
    append: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    window_size: int = 512,
    engage_radius: float | None = 30.0,
    idle: str = "alternate",
    pause_s: float = 1.0,
    events: EventSource | None = None,
    description: str | None = None,
) -> TeleopReport:
    """Open the window and record up to ``n_episodes`` episodes (episode i reset with seed
    ``seed + i``; ``--append`` continues after the dataset's last seed).

    ``policy``: a checkpoint path (``il_toolkit.policies.load``) or a Policy; required with
    ``intervene``. ``window_size``: the window's longer side in pixels. ``engage_radius``
    and ``idle``: see :mod:`il_toolkit.teleop.controls`. ``pause_s``: the final frame stays
    up this long between episodes. ``events``: an injectable :class:`EventSource` (tests).
    """
    from il_toolkit.envs import canonical_env_id, make_env
    from il_toolkit.train.datasets.minari_io import DatasetError

    if n_episodes <= 0:
        raise DatasetError(f"n_episodes must be positive, got {n_episodes}")
    if intervene and policy is None:
        raise TeleopError("--intervene needs the learned policy that acts: --policy PATH (a saved checkpoint directory)")
    if policy is not None and not intervene:
        raise TeleopError("--policy is used only with --intervene (the person takes over from the policy)")
    canonical = canonical_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    env = make_env(canonical, **{"render_mode": "rgb_array", **env_kwargs})
    window: TeleopWindow | None = None
    held = contextlib.ExitStack()
    try:
        held.enter_context(writer_lock(dataset_id))  # one writer of the dataset at a time (collect, teleop, convert)
        scheme = scheme_for(env.action_space, canonical, engage_radius=engage_radius, idle=idle)
        learner = _load_policy(policy, env) if intervene else None
        mode = "intervene" if intervene else "teleop"
        recorder = TeleopRecorder(dataset_id, env, env_id=canonical, env_kwargs=env_kwargs, mode=mode,
                                  policy_path=_policy_label(policy),
                                  seed=seed, overwrite=overwrite, append=append, description=description)
        source = events if events is not None else default_event_source()
        controls = ControlState()
        recorded, n_steps, human_steps = 0, 0, 0
        discarded_before = len(recorder.discarded)
        try:
            while recorded < n_episodes and not controls.closed:
                episode = TeleopEpisode(seed=recorder.take_seed(), observations=[], actions=[], rewards=[],
                                        human_acted=[], terminated=False, mode=mode)
                if window is None:
                    env.reset(seed=episode.seed)
                    window = TeleopWindow(window_size_for(env.render(), window_size), fps=fps)
                title = f"{canonical}  episode {recorded + 1}/{n_episodes}"
                drive = _Drive(env, scheme, learner, window, controls, source, title)
                try:
                    finished = drive.episode(episode)
                except KeyboardInterrupt:
                    controls.closed, finished = True, False
                    reason = "interrupted (Ctrl-C) mid-episode"
                else:
                    reason = "window closed mid-episode"
                if not finished:
                    if episode.length:  # closed before the first step: nothing was demonstrated, the seed is reused
                        recorder.discard(episode.seed, episode.length, reason)
                    break
                recorder.record(episode)
                recorded, n_steps = recorded + 1, n_steps + episode.length
                human_steps += sum(episode.human_acted)
                if recorded < n_episodes:
                    drive.pause(pause_s)
        except KeyboardInterrupt:  # Ctrl-C between episodes: nothing in progress to discard
            pass
        written = recorder.finish()
    finally:
        if window is not None:
            window.close()
        env.close()
        held.close()
    return TeleopReport(
        dataset_id=dataset_id, env_id=canonical, mode=mode, n_episodes=recorded, n_steps=n_steps,
        human_steps=int(human_steps), closed_early=recorded < n_episodes,
        discarded=recorder.discarded[discarded_before:], path=str(recorder.data_path.parent) if written else None,
    )


class _Drive:
    """One episode in the window: show, wait, read the controls, act, step."""

    def __init__(self, env: Any, scheme: Any, learner: Any, window: TeleopWindow, controls: ControlState,
                 source: EventSource, title: str) -> None:
        self.env, self.scheme, self.learner, self.window = env, scheme, learner, window
        self.controls, self.source, self.title = controls, source, title
        self.frame: np.ndarray | None = None
        self.actor: str | None = None  # who took the last step, shown as the border (intervene mode)

    def episode(self, episode: TeleopEpisode) -> bool:
        """Fill ``episode`` step by step; False when the window was closed before it ended."""
        obs, _ = self.env.reset(seed=episode.seed)
        episode.observations.append(obs)
        self.scheme.reset(self.env)
        if self.learner is not None:
            self.learner.reset()
        self.frame, human = self.env.render(), self.learner is None
        while True:
            self.window.show(self.frame, self.actor)
            self.window.set_title(f"{self.title}  step {episode.length}" + (f"  [{self.actor}]" if self.actor else ""))
            self.window.tick()
            self.controls.update(self.source.poll())
            if self.controls.closed:
                return False
            was_human, human = human, self.learner is None or self.scheme.takeover(self.controls)
            if human:
                action = self.scheme.human_action(self.controls, self.env, self.window.size)
            else:
                if was_human:
                    self.learner.reset()  # plans made before the person took over are stale
                action = np.asarray(self.learner.predict(obs, deterministic=True)[0])
            obs, reward, terminated, truncated, _ = self.env.step(action)
            episode.actions.append(action)
            episode.observations.append(obs)
            episode.rewards.append(float(reward))
            episode.human_acted.append(bool(human))
            episode.terminated = bool(terminated)
            self.frame = self.env.render()
            self.actor = None if self.learner is None else ("human" if human else "policy")
            if terminated or truncated:
                return True

    def pause(self, seconds: float) -> None:
        """Keep the final frame up for ``seconds``, still listening for a close."""
        for _ in range(round(seconds * self.window.fps) if self.window.fps > 0 else 0):
            self.window.show(self.frame, self.actor)
            self.window.tick()
            self.controls.update(self.source.poll())
            if self.controls.closed:
                return
