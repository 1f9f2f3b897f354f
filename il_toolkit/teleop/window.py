"""The teleoperation window: shows ``env.render()`` frames scaled to the window, paces
the loop at ``fps``, and marks who is acting with a coloured border (red: the person,
blue: the learned policy)."""

from __future__ import annotations

import os

import numpy as np

from il_toolkit.teleop.controls import TeleopError, pygame

HUMAN_COLOUR = (220, 40, 40)
POLICY_COLOUR = (40, 90, 220)
BORDER = 4


def window_size_for(frame: np.ndarray, size: int) -> tuple[int, int]:
    """(width, height) in pixels: the frame's aspect ratio with its longer side ``size``."""
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


HEADLESS_DRIVERS = ("offscreen", "dummy")


def check_display() -> None:
    """Refuse a window nobody can see: with no display SDL falls back to an off-screen driver, and
    a session would record whatever the idle controls say as a person's demonstrations. Asking for
    a headless driver (``SDL_VIDEODRIVER=dummy``, as tests with scripted events do) is allowed."""
    from il_toolkit._defaults import HEADLESS_BY_DEFAULT

    driver = pygame.display.get_driver()
    asked = os.environ.get("SDL_VIDEODRIVER", "").lower() in HEADLESS_DRIVERS and not HEADLESS_BY_DEFAULT["video"]
    if driver in HEADLESS_DRIVERS and not asked:
        pygame.display.quit()
        raise TeleopError(
            f"no display to show the teleoperation window on (SDL fell back to its {driver!r} driver): run "
            "il-toolkit teleop on a machine with a screen (or with X forwarding: ssh -X); nothing was recorded"
        )


class TeleopWindow:
    """A pygame window of ``size`` (width, height) pixels. ``fps`` = 0 runs unpaced (tests)."""

    def __init__(self, size: tuple[int, int], *, fps: float = 10.0, title: str = "il_toolkit teleop") -> None:
        if fps < 0:
            raise ValueError(f"fps must be >= 0 (0: as fast as possible), got {fps}")
        pygame.display.init()
        check_display()
        self.size = (int(size[0]), int(size[1]))
        self.surface = pygame.display.set_mode(self.size)
        self.fps = fps
        self.clock = pygame.time.Clock()
        self.set_title(title)

    def set_title(self, title: str) -> None:
        pygame.display.set_caption(title)

    def show(self, frame: np.ndarray, actor: str | None = None) -> None:
        """Draw an (H, W, 3) uint8 frame scaled to the window; ``actor`` in {"human", "policy"}
        draws the border."""
        image = pygame.surfarray.make_surface(np.ascontiguousarray(np.transpose(frame[..., :3], (1, 0, 2))))
        self.surface.blit(pygame.transform.scale(image, self.size), (0, 0))
        if actor is not None:
            colour = HUMAN_COLOUR if actor == "human" else POLICY_COLOUR
            pygame.draw.rect(self.surface, colour, pygame.Rect(0, 0, *self.size), BORDER)
        pygame.display.flip()

    def tick(self) -> None:
        """Wait for the next frame at ``fps``."""
        if self.fps > 0:
            self.clock.tick(self.fps)

    def close(self) -> None:
        pygame.display.quit()
