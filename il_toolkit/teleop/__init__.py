"""A human at the controls: teleoperation into Minari, HG-DAgger interventions, and a
person as a DAgger expert.

- :func:`run_teleop` (``il-toolkit teleop``): drive the env with the mouse (PushT) or the
  arrow keys (CartPole); every finished episode is recorded; ``intervene=True`` lets a
  learned policy act until the person takes over.
- :class:`HumanExpert`: a Policy whose ``predict`` is what the person is doing right now.
- :func:`load_human_steps`: the person-chosen steps of a teleop dataset (HG-DAgger data).

Headless (tests, CI): set ``SDL_VIDEODRIVER=dummy`` and pass a :class:`ScriptedEventSource`.
"""

from il_toolkit.teleop.controls import (
    ControlState,
    EventSource,
    KeyboardScheme,
    MouseScheme,
    PygameEventSource,
    ScriptedEventSource,
    TeleopClosed,
    TeleopError,
    key,
    mouse_button,
    mouse_motion,
    quit_event,
    scheme_for,
    window_to_action,
)
from il_toolkit.teleop.human_expert import HumanExpert
from il_toolkit.teleop.recorder import HUMAN_ACTED, human_acted, load_human_steps
from il_toolkit.teleop.session import TeleopReport, run_teleop

__all__ = [
    "ControlState", "EventSource", "HUMAN_ACTED", "HumanExpert", "KeyboardScheme", "MouseScheme", "PygameEventSource",
    "ScriptedEventSource", "TeleopClosed", "TeleopError", "TeleopReport", "human_acted", "key", "load_human_steps",
    "mouse_button", "mouse_motion", "quit_event", "run_teleop", "scheme_for", "window_to_action",
]
