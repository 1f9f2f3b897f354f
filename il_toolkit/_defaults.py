"""Process-wide defaults set on import, each only when the user has not set it.

- ``WANDB_MODE=offline``: logging never needs an account and never blocks on the network.
- ``MUJOCO_GL=egl``: headless MuJoCo rendering (Mesa's llvmpipe on machines with no GPU).
- ``PYGAME_HIDE_SUPPORT_PROMPT=1``, ``SDL_AUDIODRIVER=dummy``: pygame (used by gym-pusht)
  prints no banner and probes no sound server; on a machine with no display
  ``SDL_VIDEODRIVER=dummy`` too (a desktop keeps its real video driver for teleoperation, which
  refuses to run on the dummy driver the toolkit chose: nobody would see the window).

pygame's own ``pkg_resources`` deprecation warning is silenced (the stack pins setuptools<81
on purpose: sacred, which ``imitation.scripts`` imports, needs ``pkg_resources``, gone from setuptools 81).
"""

from __future__ import annotations

import os
import warnings

DEFAULT_ENVIRONMENT = {
    "WANDB_MODE": "offline",
    "MUJOCO_GL": "egl",
    "PYGAME_HIDE_SUPPORT_PROMPT": "1",
    "SDL_AUDIODRIVER": "dummy",
}


HEADLESS_BY_DEFAULT = {"video": False}  # True: the toolkit, not the user, chose pygame's dummy video driver


def apply_environment_defaults() -> None:
    for key, value in DEFAULT_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and "SDL_VIDEODRIVER" not in os.environ:
        os.environ["SDL_VIDEODRIVER"] = "dummy"  # headless: pygame renders off-screen
        HEADLESS_BY_DEFAULT["video"] = True
    if os.environ.get("MUJOCO_GL") == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
