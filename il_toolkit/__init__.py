"""il_toolkit: a Gymnasium-native, interactive imitation-learning toolkit.

``import il_toolkit`` registers the toolkit's environments (cheaply: nothing heavy is
imported until an env is made) and exposes the public API lazily::

    from il_toolkit import BehavioralCloning, ILConfig, make_expert, load_policy
"""

from __future__ import annotations

import importlib
from typing import Any

from il_toolkit._defaults import apply_environment_defaults

__version__ = "0.1.0"

apply_environment_defaults()

_LAZY_EXPORTS = {
    "ILConfig": "il_toolkit.config.training_config:ILConfig",
    "RLConfig": "il_toolkit.config.training_config:RLConfig",
    "BehavioralCloning": "il_toolkit.train.il.behavioral_cloning:BehavioralCloning",
    "DAgger": "il_toolkit.train.il.dagger:DAgger",
    "GAIL": "il_toolkit.train.il.gail:GAIL",
    "PPOTrainer": "il_toolkit.train.online_rl.ppo_trainer:PPOTrainer",
    "Policy": "il_toolkit.policies:Policy",
    "load_policy": "il_toolkit.policies:load",
    "make_expert": "il_toolkit.experts:make_expert",
    "evaluate": "il_toolkit.evaluation:evaluate",
    "collect_dataset": "il_toolkit.train.datasets.collect:collect_dataset",
    "load_demonstrations": "il_toolkit.train.datasets.minari_io:load_demonstrations",
}

__all__ = sorted(_LAZY_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    target = _LAZY_EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'il_toolkit' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


import il_toolkit.envs  # noqa: E402,F401  (registers the toolkit's gymnasium ids)
