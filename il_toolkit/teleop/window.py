"""The teleoperation window: shows ``env.render()`` frames scaled to the window, paces
the loop at ``fps``, and marks who is acting with a coloured border (red: the person,
blue: the learned policy)."""

from __future__ import annotations

import numpy as np

from il_toolkit.teleop.controls import pygame

HUMAN_COLOUR = (220, 40, 40)
POLICY_COLOUR = (40, 90, 220)
BORDER = 4


def window_size_for(frame: np.ndarray, size: int) -> tuple[int, int]:
    """(width, height) in pixels: the frame's aspect ratio with its longer side ``size``."""
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


class TeleopWindow:
    """A pygame window of ``size`` (width, height) pixels. ``fps`` = 0 runs unpaced (tests)."""

    def __init__(self, size: tuple[int, int], *, fps: float = 10.0, title: str = "il_toolkit teleop") -> None:
        if fps < 0:
            raise ValueError(f"fps must be >= 0 (0: as fast as possible), got {fps}")
        pygame.display.init()
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
