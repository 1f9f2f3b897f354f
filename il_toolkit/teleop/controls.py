"""What the person is doing with the mouse and keyboard, and how that becomes an action.

Events come from an :class:`EventSource` (the real pygame queue, or a scripted one in
tests that posts its events through ``pygame.event.post``); :class:`ControlState` folds
them into the current mouse position, buttons, held keys and whether the window was
closed. Held keys and buttons are tracked from the events themselves, not from
``pygame.key.get_pressed()``, so injected events behave exactly like real ones.

A control scheme turns that state into an action:

- :class:`MouseScheme` (2-D ``Box`` actions, e.g. PushT): the mouse position in the window,
  mapped linearly onto the action bounds (PushT: window pixels -> board pixels 0..512). Until
  the pointer has come within ``engage_radius`` board pixels of the pusher in an episode
  (gym-pusht's own teleop rule), the pusher is told to stay where it is, so an episode never
  starts with a jump across the board. Takeover control (``--intervene``): mouse button held.
- :class:`KeyboardScheme` (``Discrete(2)`` actions, e.g. CartPole): left arrow -> 0 (push
  left), right arrow -> 1 (push right). CartPole has no "do nothing" action, so with no
  arrow held the scheme alternates 0, 1, 0, ... (pushes that cancel over two steps, close to
  letting the cart coast); ``idle="repeat"`` repeats the last action instead. When both
  arrows are held, the one pressed last wins. Takeover control: an arrow key held.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np
from gymnasium import spaces

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402

QUIT_KEYS = (pygame.K_ESCAPE,)


class TeleopError(ValueError):
    """A teleop request that cannot work (an env with no control scheme, missing policy)."""


class TeleopClosed(RuntimeError):
    """The person closed the teleoperation window (or pressed Esc)."""

    stops_run = True  # an interactive run stops here (and resumes later) instead of dropping the round


class EventSource(Protocol):
    """Where events come from; ``poll`` returns the events since the last call."""

    def poll(self) -> list[pygame.event.Event]: ...


class PygameEventSource:
    """The real pygame event queue."""

    def poll(self) -> list[pygame.event.Event]:
        return pygame.event.get()


class ScriptedEventSource:
    """Replays ``script``: one list of events per poll (one poll per env step), posting each
    through ``pygame.event.post`` so they travel the real queue. When the script runs out it
    posts a ``QUIT`` (the window closed) if ``quit_at_end``, else nothing more."""

    def __init__(self, script: Iterable[Sequence[pygame.event.Event]], *, quit_at_end: bool = True) -> None:
        self._script: Iterator[Sequence[pygame.event.Event]] = iter(script)
        self.quit_at_end = quit_at_end
        self.polls = 0

    def poll(self) -> list[pygame.event.Event]:
        self.polls += 1
        step = next(self._script, None)
        if step is None:
            step = [quit_event()] if self.quit_at_end else []
        for event in step:
            pygame.event.post(event)
        return pygame.event.get()


# -- event constructors (for scripts and tests) ------------------------------------------
def mouse_motion(x: int, y: int, buttons: tuple[int, int, int] = (0, 0, 0)) -> pygame.event.Event:
    return pygame.event.Event(pygame.MOUSEMOTION, pos=(int(x), int(y)), rel=(0, 0), buttons=buttons)


def mouse_button(down: bool, x: int, y: int, button: int = 1) -> pygame.event.Event:
    kind = pygame.MOUSEBUTTONDOWN if down else pygame.MOUSEBUTTONUP
    return pygame.event.Event(kind, pos=(int(x), int(y)), button=button)


def key(down: bool, key_code: int) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN if down else pygame.KEYUP, key=key_code, mod=0, unicode="", scancode=0)


def quit_event() -> pygame.event.Event:
    return pygame.event.Event(pygame.QUIT)


@dataclass
class ControlState:
    """The person's controls right now. ``mouse_pos`` is in window pixels (None until the
    pointer has moved over the window); ``keys`` lists held keys, most recently pressed last."""

    mouse_pos: tuple[int, int] | None = None
    mouse_down: bool = False
    keys: list[int] = field(default_factory=list)
    closed: bool = False

    def update(self, events: Iterable[pygame.event.Event]) -> None:
        for event in events:
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key in QUIT_KEYS):
                self.closed = True
            elif event.type == pygame.MOUSEMOTION:
                self.mouse_pos = tuple(event.pos)
            elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
                self.mouse_down, self.mouse_pos = True, tuple(event.pos)
            elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
                self.mouse_down, self.mouse_pos = False, tuple(event.pos)
            elif event.type == pygame.KEYDOWN:
                self.keys = [k for k in self.keys if k != event.key] + [event.key]
            elif event.type == pygame.KEYUP:
                self.keys = [k for k in self.keys if k != event.key]
            elif event.type == pygame.WINDOWFOCUSLOST:
                self.keys, self.mouse_down = [], False  # releases are not delivered to an unfocused window


class ControlScheme(Protocol):
    """Turns the person's controls into an action for one env."""

    def reset(self, env: Any) -> None: ...

    def human_action(self, controls: ControlState, env: Any, window_size: tuple[int, int]) -> np.ndarray: ...

    def takeover(self, controls: ControlState) -> bool: ...


def window_to_action(pos: tuple[float, float], window_size: tuple[int, int], low: np.ndarray,
                     high: np.ndarray) -> np.ndarray:
    """Window pixel ``(x, y)`` -> action ``low + pos / window_size * (high - low)``, clipped
    to the bounds. PushT: a 256×256 window maps pixel (100, 50) to board (200.0, 100.0)."""
    fraction = np.asarray(pos, dtype=np.float64) / np.asarray(window_size, dtype=np.float64)
    return np.clip(low + fraction * (high - low), low, high).astype(np.float32)


def _agent_position(env: Any) -> np.ndarray | None:
    sim = getattr(getattr(env, "unwrapped", env), "sim", None)
    agent = getattr(sim, "agent", None)
    return None if agent is None else np.asarray(agent.position, dtype=np.float32)


class MouseScheme:
    """Mouse position -> 2-D position action (PushT). See the module docstring."""

    def __init__(self, action_space: spaces.Box, *, engage_radius: float | None = 30.0) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        self.engage_radius = engage_radius
        self.engaged = engage_radius is None

    def reset(self, env: Any) -> None:
        self.engaged = self.engage_radius is None

    def _hold(self, env: Any) -> np.ndarray:
        position = _agent_position(env)
        return position if position is not None else ((self.low + self.high) / 2).astype(np.float32)

    def human_action(self, controls: ControlState, env: Any, window_size: tuple[int, int]) -> np.ndarray:
        if controls.mouse_pos is None:
            return self._hold(env)
        target = window_to_action(controls.mouse_pos, window_size, self.low, self.high)
        if not self.engaged:
            position = _agent_position(env)
            near = position is None or float(np.linalg.norm(target - position)) <= float(self.engage_radius)
            if not (near or controls.mouse_down):
                return self._hold(env)
            self.engaged = True
        return target

    def takeover(self, controls: ControlState) -> bool:
        return controls.mouse_down


class KeyboardScheme:
    """Left/right arrows -> Discrete(2) actions (CartPole). See the module docstring."""

    KEYS = {pygame.K_LEFT: 0, pygame.K_RIGHT: 1}

    def __init__(self, *, idle: str = "alternate") -> None:
        if idle not in ("alternate", "repeat"):
            raise TeleopError(f"idle must be 'alternate' or 'repeat', got {idle!r}")
        self.idle = idle
        self.last = 1

    def reset(self, env: Any) -> None:
        self.last = 1

    def human_action(self, controls: ControlState, env: Any, window_size: tuple[int, int]) -> np.ndarray:
        held = [self.KEYS[k] for k in controls.keys if k in self.KEYS]
        if held:
            self.last = held[-1]
        elif self.idle == "alternate":
            self.last = 1 - self.last
        return np.int64(self.last)

    def takeover(self, controls: ControlState) -> bool:
        return any(k in self.KEYS for k in controls.keys)


def scheme_for(action_space: spaces.Space, env_id: str = "the env", **options: Any) -> ControlScheme:
    """The control scheme for an action space: a mouse for 2-D boxes, arrows for Discrete(2)."""
    from il_toolkit.policies.spaces import describe

    if isinstance(action_space, spaces.Box) and action_space.shape == (2,) and np.all(np.isfinite(action_space.low)) \
            and np.all(np.isfinite(action_space.high)):
        return MouseScheme(action_space, **{k: v for k, v in options.items() if k == "engage_radius"})
    if isinstance(action_space, spaces.Discrete) and action_space.n == 2:
        return KeyboardScheme(**{k: v for k, v in options.items() if k == "idle"})
    raise TeleopError(
        f"teleop drives 2-D bounded Box actions with the mouse (e.g. il_toolkit/PushT-v0) and Discrete(2) actions "
        f"with the arrow keys (e.g. CartPole-v1); {env_id} has action space {describe(action_space)}"
    )
