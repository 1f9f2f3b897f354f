"""A person as a :class:`~il_toolkit.policies.base.Policy`, so DAgger can ask a human.

``HumanExpert(env).predict(obs)`` shows ``env.render()`` (the state the env is in now, which
is the state ``obs`` came from when ``env`` is the env being stepped), waits for the next
frame at ``fps``, reads the mouse/keyboard and returns what the person is doing right now
(the same controls as ``il-toolkit teleop``: see :mod:`il_toolkit.teleop.controls`)::

    env = make_env("il_toolkit/PushT-v0")                        # CartPole: render_mode="rgb_array"
    trainer = DAgger(env, expert_policy=HumanExpert(env), config=ILConfig.dagger())
    trainer.train()

Plain DAgger asks the expert for a label at every step, so the person labels every state the
learner visits; with ``dagger_variant="hg_dagger"`` the learner acts and the person takes over
by holding the takeover control, labelling only the states they act in (HG-DAgger). Closing the window raises :class:`TeleopClosed`; DAgger's own resumption
redoes the round that was cut short.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.spaces import is_batched
from il_toolkit.teleop.controls import ControlState, EventSource, PygameEventSource, TeleopClosed, scheme_for
from il_toolkit.teleop.window import TeleopWindow, window_size_for


class HumanExpert(BasePolicy):
    """What the person at the window is doing, as actions for ``env``.

    Args:
        env: the env being stepped (its ``render()`` is what the person sees); it needs
            ``render_mode="rgb_array"``.
        fps: queries per second at most (0: unpaced, for tests).
        window_size: the window's longer side in pixels.
        events: an injectable event source (tests); the pygame queue by default.
        engage_radius, idle: see :mod:`il_toolkit.teleop.controls`.
    """

    def __init__(self, env: gym.Env, *, fps: float = 10.0, window_size: int = 512, events: EventSource | None = None,
                 engage_radius: float | None = 30.0, idle: str = "alternate") -> None:
        super().__init__(env.observation_space, env.action_space)
        if getattr(env, "render_mode", None) != "rgb_array":
            raise ValueError(
                f"HumanExpert shows env.render() to the person, so the env needs render_mode='rgb_array' (it has "
                f"{getattr(env, 'render_mode', None)!r}): make_env(env_id, render_mode='rgb_array')"
            )
        self.env = env
        self.fps, self.window_size = fps, window_size
        self.scheme = scheme_for(env.action_space, env.spec.id if env.spec else "the env",
                                 engage_radius=engage_radius, idle=idle)
        self.events = events if events is not None else PygameEventSource()
        self.controls = ControlState()
        self.window: TeleopWindow | None = None
        self.queries = 0

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        if is_batched(observation, self.observation_space):
            raise ValueError("a person acts in one env at a time: pass one observation, not a batch")
        frame = self.env.render()
        if self.window is None:
            self.window = TeleopWindow(window_size_for(frame, self.window_size), fps=self.fps,
                                       title="il_toolkit: you are the expert")
        self.window.show(frame, "human")
        self.window.tick()
        self.controls.update(self.events.poll())
        if self.controls.closed:
            self.close()
            raise TeleopClosed("the expert's window was closed; rerun to resume (DAgger redoes the unfinished round)")
        self.queries += 1
        return self.scheme.human_action(self.controls, self.env, self.window.size), state

    def taking_over(self) -> bool:
        """Whether the person holds the takeover control now (PushT: the mouse button; CartPole:
        an arrow key), as read at the last :meth:`predict`: HG-DAgger's gate
        (``dagger_variant="hg_dagger"``) hands them control while they do."""
        return bool(self.scheme.takeover(self.controls))

    def reset(self) -> None:
        self.scheme.reset(self.env)

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window = None
