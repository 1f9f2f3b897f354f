"""Published figures shown beside ours, in their own rows and never ranked with ours.

They come from other code, other demonstrations (often human) and other evaluation
protocols; the ``demos`` and ``note`` fields say how each was obtained, and each row names its
paper or source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchor:
    task: str  # a toolkit env id, or a description for tasks we do not run
    method: str
    metric: str
    value: str
    demos: str
    source: str
    note: str = ""


ANCHORS: tuple[Anchor, ...] = (
    Anchor("il_toolkit/PushT-v0", "Diffusion Policy (state)", "max coverage (avg_max_reward)", "0.95 best / 0.91 last-10 mean",
           "human demonstrations", "Chi et al., Diffusion Policy (RSS 2023)",
           "state observations; best checkpoint and mean of the last 10 checkpoints"),
    Anchor("il_toolkit/PushT-v0", "Diffusion Policy (image)", "max coverage (avg_max_reward)", "0.91 best / 0.84 last-10 mean",
           "human demonstrations", "Chi et al., Diffusion Policy (RSS 2023)", "image observations"),
    Anchor("il_toolkit/PushT-v0", "LeRobot diffusion (image)", "pc_success / avg max overlap", "63.8% / 0.959",
           "human demonstrations (lerobot/pusht)", "LeRobot diffusion_pusht evaluation", "96x96 images, 500 episodes"),
    Anchor("il_toolkit/AlohaTransferCube-v0", "ACT", "pc_success", "86-90%", "50 scripted demonstrations",
           "Zhao et al., ACT (RSS 2023)", "images, 50 evaluation episodes"),
    Anchor("il_toolkit/AlohaInsertion-v0", "ACT", "pc_success", "32-50%", "50 scripted demonstrations",
           "Zhao et al., ACT (RSS 2023)", "images, 50 evaluation episodes"),
    Anchor("seals MuJoCo tasks", "BC", "normalised score", "0.93", "RL expert rollouts",
           "imitation library benchmark", "10 seeds; not CartPole: shown for scale"),
    Anchor("seals MuJoCo tasks", "DAgger", "normalised score", "1.00", "RL expert rollouts (interactive expert)",
           "imitation library benchmark", "10 seeds; not CartPole: shown for scale"),
    Anchor("seals MuJoCo tasks", "GAIL", "normalised score", "0.94", "RL expert rollouts",
           "imitation library benchmark", "10 seeds; not CartPole: shown for scale"),
)


def anchors_for(task: str) -> list[Anchor]:
    return [a for a in ANCHORS if a.task == task]


def other_anchors(tasks: set[str]) -> list[Anchor]:
    """Anchors on tasks the harness does not run (e.g. seals MuJoCo), for scale."""
    return [a for a in ANCHORS if not a.task.startswith("il_toolkit/")]
