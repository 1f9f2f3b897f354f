"""``TRAINER_REGISTRY``: the flow-matching families by key, as lazy ``"module:attr"`` entry points.

Data only: registering imports nothing, so a :class:`~il_toolkit.policies.flow_policy.FlowMatchingPolicy`
can name its family without importing the trainers; the family's class (whose hooks sample the
actions) is imported on first ``get``. The public path is :mod:`il_toolkit.train.imitation_learning`.
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
