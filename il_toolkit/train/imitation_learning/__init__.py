"""Flow-matching imitation-learning trainers (seed 000), one sub-package per family.

``TRAINER_REGISTRY`` maps each key to its trainer class, imported lazily on first use::

    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
    Trainer = TRAINER_REGISTRY.get("vfp_single_expert_trainer")
    models = Trainer.build_models(spec)
    trainer = Trainer(models, Trainer.build_optimizers(models), None, "cpu")
    metrics = trainer.train_step(batch, epoch, total_epochs, iterations)

Every trainer follows the common step in :mod:`.base` (features -> conditioning -> flow
matching -> decode -> loss -> zero-grad, backward, per-component gradient clipping, step).
"""

from __future__ import annotations

from il_toolkit.registry import Registry

TRAINER_REGISTRY: Registry[type] = Registry("trainer")

_PACKAGE = "il_toolkit.train.imitation_learning"
TRAINER_REGISTRY.register(
    "naive_flow_matching_policy_trainer",
    indirect=f"{_PACKAGE}.naive_flow_matching_policy.trainer:NaiveFlowMatchingPolicyTrainer",
    description="Basic flow matching policy",
)
TRAINER_REGISTRY.register(
    "vfp_single_expert_trainer",
    indirect=f"{_PACKAGE}.vfp_single_expert.trainer:VFPSingleExpertTrainer",
    description="Single-expert flow matching, Beta(1.0, 1.5) time, 15% camera dropout, L2 velocity loss",
)
TRAINER_REGISTRY.register(
    "vfp_single_expert_trainer_depth",
    indirect=f"{_PACKAGE}.vfp_single_expert.trainer_depth:VFPSingleExpertDepthTrainer",
    description="Single-expert VFP with depth as a 4th visual input, L1 velocity loss",
)
TRAINER_REGISTRY.register(
    "mutual_information_estimator_trainer",
    indirect=f"{_PACKAGE}.mutual_information_estimator.trainer:MutualInformationEstimatorTrainer",
    description="Flow policy plus an InfoNCE estimate of state/action mutual information",
)
TRAINER_REGISTRY.register(
    "cfg_vqvae_flow_matching_trainer_kot",
    indirect=f"{_PACKAGE}.cfg_vqvae_flow_matching.trainer:CFGVQVAEFlowMatchingTrainer",
    description="Classifier-free guidance on a VQ-VAE code, prior over codes, K-OT (Sinkhorn) regularisation",
)
TRAINER_REGISTRY.register(
    "variational_flow_matching_policy_trainer",
    indirect=f"{_PACKAGE}.variational_flow_matching_policy.trainer:VariationalFlowMatchingPolicyTrainer",
    description="Posterior/prior VQ codes, gated mixture of expert velocity decoders, K-OT",
)

__all__ = ["TRAINER_REGISTRY"]
