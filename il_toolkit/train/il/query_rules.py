"""When the ensemble variants ask the expert: EnsembleDAgger's and ThriftyDAgger's thresholds,
calibrated to a target query rate on the states the learner visits, and what they are computed
from: the novelty index over the aggregate's states (EnsembleDAgger) and the failure-risk model
over every rollout so far (ThriftyDAgger)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.atomic_files import replace_atomically
from il_toolkit.config.training_config import ILConfig
from il_toolkit.train.il.gates import EnsembleGate, ThriftyGate, threshold_for_rate
from il_toolkit.train.il.uncertainty import NoveltyIndex, RiskModel, failure_targets

ENSEMBLE_VARIANTS = ("ensemble_dagger", "thrifty_dagger")  # the variants whose gate this module calibrates
RISK_FILE = "risk_data.npz"  # thrifty_dagger's rollouts for its risk model, kept for resuming
MIN_CALIBRATION_STATES = 50  # fewer learner-driven states than this in a round: calibrate on the aggregate
RISK_GAMMA = 0.99  # discount of the failure targets (ThriftyDAgger's risk)


class QueryCalibration:
    """The state behind an ensemble variant's gate, for ``env`` under ``config``:
    ``visited`` (this round's learner states so far), ``aggregate_states``, ``novelty``, ``risk``,
    ``risk_data`` (every rollout's states, actions and failure targets) and the current
    ``thresholds``."""

    def __init__(self, config: ILConfig, env: gym.Env) -> None:
        self.config, self.env = config, env
        self.visited: np.ndarray | None = None
        self.aggregate_states: np.ndarray | None = None
        self.novelty: NoveltyIndex | None = None
        self.risk: RiskModel | None = None
        self.risk_data: dict[str, list[np.ndarray]] = {"obs": [], "acts": [], "risk": []}
        self.thresholds: dict[str, float] = {}

    def gate(self, ensemble: Any) -> EnsembleGate | ThriftyGate:
        """The round's gate over ``ensemble`` (an :class:`~il_toolkit.policies.ensemble.EnsemblePolicy`
        or None before the first fit), its thresholds calibrated now."""
        self.thresholds = self.calibrate(ensemble)
        if self.config.dagger_variant == "ensemble_dagger":
            gate: EnsembleGate | ThriftyGate = EnsembleGate(ensemble, np.inf, self.novelty)
        else:
            gate = ThriftyGate(ensemble, self.env.action_space, np.inf, self.risk)
        gate.set_thresholds(self.thresholds)
        return gate

    def recalibrate(self, gate: Any, visited: list[np.ndarray], ensemble: Any) -> None:
        """After each episode of a round: thresholds reset on every state visited in the round so
        far, by the current learner, so that the query rate follows the target as the round's states
        drift from the last round's (calibrating once per round on the last round's states
        overshot a 10% target five- to nine-fold on PushT)."""
        states = np.concatenate(visited)
        if not isinstance(gate, (EnsembleGate, ThriftyGate)) or len(states) < MIN_CALIBRATION_STATES:
            return
        self.visited = states
        self.thresholds = self.calibrate(ensemble)
        gate.set_thresholds(self.thresholds)

    def calibrate(self, ensemble: Any) -> dict[str, float]:
        """Thresholds that send ``dagger_target_query_rate`` of the states visited (this round's so far,
        else the last round's; round 1 and after a resume: the aggregate's) to the expert, the rate
        split evenly between the gate's criteria (ThriftyDAgger's rule)."""
        states = self.visited if self.visited is not None else self.aggregate_states
        if ensemble is None or states is None or len(states) == 0:
            return {"disagreement": float("-inf")}  # a learner fitted on nothing defers to the expert everywhere
        variant, rate = self.config.dagger_variant, self.config.dagger_target_query_rate
        second = self.novelty if variant == "ensemble_dagger" else self.risk
        share = rate / 2 if second is not None else rate
        actions = ensemble.member_actions(states)
        thresholds = {"disagreement": threshold_for_rate(ensemble.disagreement(actions), share)}
        if self.novelty is not None and variant == "ensemble_dagger":
            thresholds["novelty"] = threshold_for_rate(  # the aggregate's own states are in the index: skip themselves
                self.novelty.distances(states, leave_one_out=self.visited is None), share)
        if self.risk is not None and variant == "thrifty_dagger":
            thresholds["risk"] = threshold_for_rate(self.risk.predict(states, ensemble.combine(actions)), share)
        return thresholds

    def add_rollout(self, rolled: Any, episode: Any) -> None:
        """An episode's executed steps and their failure targets, for ThriftyDAgger's risk model."""
        if self.config.dagger_variant != "thrifty_dagger":
            return
        self.risk_data["obs"].append(np.asarray(rolled.obs[:-1], dtype=np.float64))
        self.risk_data["acts"].append(np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in episode.actions]))
        self.risk_data["risk"].append(failure_targets(episode.length, not episode.success, RISK_GAMMA))

    def update(self, trajectories: Sequence[Any]) -> None:
        """After a fit: the novelty index over the aggregate's states (ensemble_dagger) and the risk
        model over every rollout so far (thrifty_dagger); nothing for the other variants."""
        from il_toolkit.features.state import state_features_for

        c = self.config
        if c.dagger_variant not in ENSEMBLE_VARIANTS:
            return
        features = state_features_for(self.env, task_frame=c.task_frame, relative_actions=c.relative_actions,
                                      drop_velocity_obs=c.drop_velocity_obs).features
        states = np.concatenate([np.asarray(t.obs[:-1], dtype=np.float64) for t in trajectories]) if trajectories else None
        self.aggregate_states = states
        if c.dagger_variant == "ensemble_dagger" and states is not None:
            self.novelty = NoveltyIndex(features, states)
        if c.dagger_variant == "thrifty_dagger" and self.risk_data["obs"]:
            self.risk = RiskModel(features, self.env.action_space, seed=c.seed)
            self.risk.fit(*(np.concatenate(self.risk_data[k]) for k in ("obs", "acts", "risk")))

    def snapshot(self) -> tuple[Any, ...]:
        """What a round changes, to undo it (:meth:`rollback`) when the round is dropped."""
        return {k: list(v) for k, v in self.risk_data.items()}, self.visited, dict(self.thresholds)

    def rollback(self, snapshot: tuple[Any, ...]) -> None:
        self.risk_data, self.visited, self.thresholds = snapshot

    def save(self, directory: Path) -> None:
        """The risk model's rollouts, written atomically beside the run's state."""
        if self.risk_data["obs"]:
            arrays = {k: np.concatenate(v) for k, v in self.risk_data.items()}
            replace_atomically(directory / RISK_FILE, lambda path: _savez(path, arrays))

    def restore(self, directory: Path, trajectories: Sequence[Any]) -> None:
        """After a resume: the risk model's rollouts from disk, then the index and risk model refit."""
        path = directory / RISK_FILE
        if self.config.dagger_variant == "thrifty_dagger" and path.exists():
            with np.load(path) as data:
                self.risk_data = {k: [data[k]] for k in ("obs", "acts", "risk")}
        self.update(trajectories)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` into exactly ``path`` (given a name, it would append ``.npz`` to one that lacks it)."""
    with path.open("wb") as file:
        np.savez(file, **arrays)
