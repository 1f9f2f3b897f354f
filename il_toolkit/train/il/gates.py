"""Who acts at each step of an interactive rollout, and so who labels: the DAgger variants' gates.

A gate sees one step (:class:`StepView`: the observation, the learner's proposed action and,
only if it asks, the expert's) and says whether the expert acts. The expert's action is
asked for lazily, so a gate that never looks at it spends no expert query.

- :class:`BetaGate` (DAgger, Ross et al. 2011): the expert acts with probability beta, and
  labels every visited state.
- :class:`SimulatedPerson` (HG-DAgger, Kelly et al. 2019, with a model of the person): watches
  the learner, takes over once it strays from what the expert would do by more than a
  threshold for ``reaction_steps`` steps in a row, and hands back after ``settle_steps`` once
  the learner would act within the threshold again.
- :class:`PersonAtControls` (HG-DAgger with a real person): takes over while the person holds
  the takeover control (:class:`~il_toolkit.teleop.human_expert.HumanExpert`).
- :class:`EnsembleGate` (EnsembleDAgger, Menda et al. 2019): the expert acts where the
  ensemble's disagreement or the state's distance from the training data passes its threshold.
- :class:`ThriftyGate` (ThriftyDAgger, Hoque et al. 2021): hands over where the ensemble's
  disagreement (novelty) or a learned failure risk passes its threshold, and back once the
  learner agrees with the expert again and the risk is low.

Distances between actions are in units of half the action space's range, root mean square
over dimensions (:func:`action_distance`): 0 is the same action, 1 a typical dimension
half the range away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
from gymnasium import spaces

from il_toolkit.policies.spaces import half_ranges


def action_distance(a: np.ndarray, b: np.ndarray, action_space: spaces.Space) -> float:
    """How far apart two actions are: for a Box, the RMS over dimensions of their difference in
    units of half each dimension's range; for a Discrete space, 0 if equal else 1."""
    if isinstance(action_space, spaces.Discrete):
        return float(int(np.asarray(a).item()) != int(np.asarray(b).item()))
    diff = (np.asarray(a, dtype=np.float64).reshape(-1) - np.asarray(b, dtype=np.float64).reshape(-1)) / half_ranges(
        action_space)
    return float(np.sqrt(np.mean(diff ** 2)))


@dataclass
class StepView:
    """One step as a gate sees it; ``expert_action()`` asks the expert at most once."""

    observation: Any
    learner_action: np.ndarray | None  # None: there is no learner yet
    ask_expert: Callable[[], np.ndarray]
    member_actions: np.ndarray | None = None  # (K, *action_shape) when the learner is an ensemble
    _expert: np.ndarray | None = field(default=None, repr=False)

    @property
    def expert_asked(self) -> bool:
        return self._expert is not None

    def expert_action(self) -> np.ndarray:
        if self._expert is None:
            self._expert = np.asarray(self.ask_expert())
        return self._expert


class Gate(Protocol):
    labels_every_state: bool  # True: the expert labels every visited state (plain DAgger)

    def reset(self) -> None: ...

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool: ...


class BetaGate:
    """Plain DAgger: the expert acts with probability ``beta`` (always while there is no learner)."""

    labels_every_state = True

    def __init__(self, beta: float, rng: np.random.Generator) -> None:
        self.beta, self.rng = beta, rng

    def reset(self) -> None:
        pass

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool:
        return view.learner_action is None or self.rng.random() < self.beta


class SimulatedPerson:
    """A model of a person supervising the learner (HG-DAgger's gate).

    Args:
        action_space: the env's, for :func:`action_distance`.
        threshold: how far the learner may stray from the expert's action before the person
            notices (> 0, in :func:`action_distance` units).
        reaction_steps: steps in a row the learner must stray before the person takes over.
        settle_steps: steps the person keeps control at least; after them they hand back at the
            first step the learner would act within ``threshold`` of them.
    """

    labels_every_state = False

    def __init__(self, action_space: spaces.Space, threshold: float, reaction_steps: int = 2,
                 settle_steps: int = 10) -> None:
        if not threshold > 0:
            raise ValueError(f"the intervention threshold must be > 0 (action distance, half-ranges), got {threshold}")
        if reaction_steps < 1 or settle_steps < 1:
            raise ValueError(f"reaction_steps and settle_steps must be >= 1, got {reaction_steps} and {settle_steps}")
        self.action_space, self.threshold = action_space, threshold
        self.reaction_steps, self.settle_steps = reaction_steps, settle_steps
        self.reset()

    def reset(self) -> None:
        self.straying = 0  # steps in a row the learner has strayed
        self.in_control = 0  # steps since the person took over

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool:
        if view.learner_action is None:
            return True
        strays = action_distance(view.learner_action, view.expert_action(), self.action_space) > self.threshold
        if expert_in_control:
            self.in_control += 1
            if self.in_control >= self.settle_steps and not strays:
                self.straying = self.in_control = 0
                return False
            return True
        self.straying = self.straying + 1 if strays else 0
        if self.straying >= self.reaction_steps:
            self.in_control = 0
            return True
        return False


class PersonAtControls:
    """HG-DAgger with a person: the expert (a ``HumanExpert``, shown every step) acts while the
    person holds the takeover control."""

    labels_every_state = False

    def __init__(self, person: Any) -> None:
        if not hasattr(person, "taking_over"):
            raise TypeError(f"{type(person).__name__} has no takeover control; pass a HumanExpert")
        self.person = person

    def reset(self) -> None:
        pass

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool:
        view.expert_action()  # shows the frame and reads the controls
        return view.learner_action is None or bool(self.person.taking_over())


class EnsembleGate:
    """EnsembleDAgger's gate, without asking the expert: it acts where the members' disagreement
    passes ``disagreement_threshold`` or the state lies farther than ``novelty_threshold`` from
    the training data (``novelty(observation)``; None: disagreement alone)."""

    labels_every_state = False

    def __init__(self, ensemble: Any, disagreement_threshold: float, novelty: Callable[[Any], float] | None = None,
                 novelty_threshold: float = np.inf) -> None:
        self.ensemble, self.novelty = ensemble, novelty
        self.disagreement_threshold, self.novelty_threshold = disagreement_threshold, novelty_threshold

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """New thresholds (``"disagreement"``; ``"novelty"``, +inf when absent)."""
        self.disagreement_threshold = thresholds["disagreement"]
        self.novelty_threshold = thresholds.get("novelty", np.inf)

    def reset(self) -> None:
        pass

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool:
        if view.member_actions is None:
            return True
        doubt = float(self.ensemble.disagreement(view.member_actions[:, None])[0])
        if doubt > self.disagreement_threshold:
            return True
        return self.novelty is not None and self.novelty(view.observation) > self.novelty_threshold


class ThriftyGate:
    """ThriftyDAgger's gate: hand over where the ensemble's disagreement passes
    ``novelty_threshold`` or the learned failure risk of the learner's action passes
    ``risk_threshold`` (``risk(observation, action)``; None before there is a risk model), and back
    once the learner's action is within ``handback_distance`` of the expert's and the risk is under
    half its threshold."""

    labels_every_state = False

    def __init__(self, ensemble: Any, action_space: spaces.Space, novelty_threshold: float,
                 risk: Callable[[Any, np.ndarray], float] | None = None, risk_threshold: float = np.inf,
                 handback_distance: float | None = None) -> None:
        self.ensemble, self.action_space, self.risk = ensemble, action_space, risk
        self.follows_novelty = handback_distance is None  # hand back within the novelty threshold
        self.novelty_threshold, self.risk_threshold = novelty_threshold, risk_threshold
        self.handback_distance = novelty_threshold if handback_distance is None else handback_distance

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """New thresholds (``"disagreement"``, the novelty; ``"risk"``, +inf when absent)."""
        self.novelty_threshold, self.risk_threshold = thresholds["disagreement"], thresholds.get("risk", np.inf)
        if self.follows_novelty:
            self.handback_distance = self.novelty_threshold

    def reset(self) -> None:
        pass

    def expert_acts(self, view: StepView, expert_in_control: bool) -> bool:
        if view.member_actions is None:
            return True
        risk = self.risk(view.observation, view.learner_action) if self.risk is not None else 0.0
        if expert_in_control:
            close = action_distance(view.learner_action, view.expert_action(), self.action_space) <= self.handback_distance
            return not (close and risk < self.risk_threshold / 2)
        doubt = float(self.ensemble.disagreement(view.member_actions[:, None])[0])
        return doubt > self.novelty_threshold or risk > self.risk_threshold


def threshold_for_rate(values: np.ndarray, rate: float) -> float:
    """The threshold that ``rate`` of ``values`` exceed (ThriftyDAgger sets its thresholds from a
    target query rate this way); +inf when there are no values."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return float("inf")
    return float(np.quantile(values, 1.0 - rate))
