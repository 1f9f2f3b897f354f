"""The shared feature pipeline: how every learner sees an env's observations and expresses its actions.

- :mod:`.frames`: task frames (PushT's block frame), batched numpy functions of the raw state;
- :mod:`.state`: :class:`StateFeatures`, the state features and action codec an env declares.

Lower than policies and trainers: nothing here imports a policy, trainer, expert or dataset.
"""

from il_toolkit.features.state import FeatureMismatchError, StateFeatures, periodic_dims, state_features_for

__all__ = ["FeatureMismatchError", "StateFeatures", "periodic_dims", "state_features_for"]
