"""Flow-matching imitation-learning trainers (the flow-matching guide), one sub-package per family.

``TRAINER_REGISTRY`` maps each key to its trainer class, imported lazily on first use::

    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
    Trainer = TRAINER_REGISTRY.get("vfp_single_expert_trainer")
    models = Trainer.build_models(spec)
    trainer = Trainer(models, Trainer.build_optimizers(models), None, "cpu")
    metrics = trainer.train_step(batch, epoch, total_epochs, iterations)

The registry itself is data in :mod:`il_toolkit.model.flow_registry` (so a policy can act
without importing a trainer module until its key is used). Every trainer follows the common step in :mod:`.base` (features -> conditioning -> flow
matching -> decode -> loss -> zero-grad, backward, per-component gradient clipping, step).
"""

from __future__ import annotations

from il_toolkit.model.flow_registry import TRAINER_REGISTRY

__all__ = ["TRAINER_REGISTRY"]
