"""Glue to stable-baselines3's and imitation's training machinery, in one place: their loggers
silenced or captured, and imitation's BC run on an SB3 actor-critic.

Nothing here imports another toolkit module, so the GAIL and PPO code that both need it do not
import each other. ``imitation`` and SB3 are imported inside the functions (heavy to import).
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, Callable, Iterator

import numpy as np


@contextlib.contextmanager
def silent_imitation_logger() -> Iterator[Any]:
    """imitation's logger writing nothing, in a temporary folder removed afterwards
    (``imitation.util.logger.configure()`` without a folder leaves ``/tmp/imitation-<time>`` behind)."""
    from imitation.util import logger as imitation_logger

    with tempfile.TemporaryDirectory(prefix="il_toolkit-imitation-") as folder:
        yield imitation_logger.configure(folder, format_strs=[])


def timestep_bar(total: int, desc: str, disable: bool = False) -> Any:
    """An SB3 callback showing a tqdm bar over ``total`` environment steps (all envs together):
    the step, the budget and the time left."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class TimestepBar(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc=desc, unit="step", disable=disable, dynamic_ncols=True, leave=False)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return TimestepBar()


def capture_writer(sink: Callable[[dict[str, Any], int], None]) -> Any:
    """An SB3 ``KVWriter`` that hands every dumped record's scalars to ``sink(record, step)``."""
    from stable_baselines3.common.logger import KVWriter

    class CaptureWriter(KVWriter):
        def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
            scalars = {k: v for k, v in key_values.items() if isinstance(v, (int, float)) or hasattr(v, "item")}
            if scalars:
                sink(scalars, step)

        def close(self) -> None:
            pass

    return CaptureWriter()


def bc_warm_start(policy: Any, transitions: Any, *, epochs: int, batch_size: int, learning_rate: float,
                  rng: np.random.Generator, device: str) -> None:
    """Behavioural cloning of ``policy`` (an SB3 actor-critic) on ``transitions`` (GAIL's warm start,
    PPO's distillation); the batch is at most the number of transitions (imitation's BC refuses
    fewer transitions than a batch)."""
    from imitation.algorithms import bc

    with silent_imitation_logger() as imitation_log:
        trainer = bc.BC(
            observation_space=policy.observation_space, action_space=policy.action_space, rng=rng, policy=policy,
            demonstrations=transitions, batch_size=min(batch_size, len(transitions)), optimizer_kwargs={"lr": learning_rate},
            device=device, custom_logger=imitation_log,
        )
        trainer.train(n_epochs=epochs, progress_bar=False, log_interval=10**9)
    policy.set_training_mode(False)
