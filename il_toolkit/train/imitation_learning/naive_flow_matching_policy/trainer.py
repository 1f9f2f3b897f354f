"""Basic flow matching: t ~ U[0, 1], no camera dropout, velocity MSE."""

from __future__ import annotations

from il_toolkit.train.imitation_learning.base import FlowMatchingTrainer


class NaiveFlowMatchingPolicyTrainer(FlowMatchingTrainer):
    key = "naive_flow_matching_policy_trainer"
