"""What the gated DAgger variants read besides the ensemble: how far a state lies from the
training data (:class:`NoveltyIndex`) and how likely the learner is to fail from it
(:class:`RiskModel`, ThriftyDAgger's Q-risk)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from il_toolkit.policies.spaces import half_ranges

FeatureMap = Callable[[np.ndarray], np.ndarray]  # (B, D) states -> (B, F) features


class NoveltyIndex:
    """Distance from a state to its nearest training state, in the learner's features, each
    feature divided by its standard deviation over the training states (so 1 is one standard
    deviation away in one feature).

    Args:
        features: (B, D) states -> (B, F) features (the env's feature pipeline).
        states: (N, D) training states.
    """

    def __init__(self, features: FeatureMap, states: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        if len(states) == 0:
            raise ValueError("a novelty index needs at least one training state")
        self.features = features
        x = features(np.asarray(states, dtype=np.float64)).astype(np.float64)
        std = x.std(axis=0)
        self.scale = np.where(std > 1e-8, std, 1.0)
        self.tree = cKDTree(x / self.scale)

    def distances(self, states: np.ndarray, *, leave_one_out: bool = False) -> np.ndarray:
        """(B, D) states -> (B,) distances; ``leave_one_out`` skips each state's own entry
        (for states of the training set itself)."""
        x = self.features(np.asarray(states, dtype=np.float64)).astype(np.float64) / self.scale
        k = 2 if leave_one_out and self.tree.n > 1 else 1
        d, _ = self.tree.query(x, k=k)
        return d[:, -1] if k == 2 else d

    def __call__(self, state: np.ndarray) -> float:
        return float(self.distances(np.asarray(state)[None])[0])


def failure_targets(n_steps: int, failed: bool, gamma: float) -> np.ndarray:
    """Monte Carlo targets of ThriftyDAgger's risk: the discounted indicator of failing at the
    episode's end, ``gamma**(T-1-t)`` for each step t of a failed episode, 0 for a success."""
    if not failed:
        return np.zeros(n_steps)
    return gamma ** np.arange(n_steps - 1, -1, -1, dtype=np.float64)


class RiskModel:
    """ThriftyDAgger's Q-risk: the probability, discounted by how far off, that an episode fails
    after taking ``action`` in ``state``. Trained by binary cross-entropy on
    :func:`failure_targets` of the learner's own rollouts (Monte Carlo, where the paper uses
    temporal differences); no expert labels are needed.

    Args:
        features: the env's feature map for states; actions enter in half-range units.
        action_space: the env's.
        hidden: hidden layer sizes.
        seed: torch seed for the initial weights and batches.
    """

    def __init__(self, features: FeatureMap, action_space: spaces.Space, hidden: tuple[int, ...] = (128, 128),
                 seed: int = 0) -> None:
        self.features, self.action_space, self.hidden, self.seed = features, action_space, hidden, seed
        self.model: nn.Module | None = None
        self.mean = self.std = None

    def _inputs(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        x = self.features(np.asarray(states, dtype=np.float64)).astype(np.float64)
        a = np.asarray(actions, dtype=np.float64).reshape(len(x), -1)
        if isinstance(self.action_space, spaces.Box):
            centre = (self.action_space.low.reshape(-1).astype(np.float64) + self.action_space.high.reshape(-1)) / 2
            a = (a - np.where(np.isfinite(centre), centre, 0.0)) / half_ranges(self.action_space)
        return np.concatenate([x, a], axis=1)

    def fit(self, states: np.ndarray, actions: np.ndarray, targets: np.ndarray, *, steps: int = 1000,
            batch_size: int = 256, learning_rate: float = 1e-3) -> float:
        """Fit from scratch with the toolkit's supervised loop (:func:`il_toolkit.train.supervised.fit`)
        for about ``steps`` minibatches; returns the final training loss."""
        from il_toolkit.train.supervised import fit

        torch.manual_seed(self.seed)
        x = self._inputs(states, actions)
        self.mean, std = x.mean(axis=0), x.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)
        inputs = ((x - self.mean) / self.std).astype(np.float32)
        layers: list[nn.Module] = []
        width = inputs.shape[1]
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.model = nn.Sequential(*layers, nn.Linear(width, 1))
        epochs = max(1, -(-steps // max(len(inputs) // batch_size, 1)))
        history = fit(self, (inputs, np.clip(targets, 0.0, 1.0).astype(np.float32)), None, epochs=epochs,
                      batch_size=batch_size, learning_rate=learning_rate, weight_decay=0.0,
                      rng=np.random.default_rng(self.seed))
        return history.final_train_loss

    # what the supervised loop asks of a learner
    def parameters(self) -> Any:
        return self.model.parameters()

    def compute_loss(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.model(torch.as_tensor(inputs)).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.as_tensor(targets))
        return loss, {"loss": loss.item()}

    def predict(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(B, D) states and (B, Da) actions -> (B,) risks in [0, 1]."""
        if self.model is None:
            raise RuntimeError("the risk model has not been fitted")
        x = torch.as_tensor((self._inputs(states, actions) - self.mean) / self.std, dtype=torch.float32)
        with torch.no_grad():
            return torch.sigmoid(self.model(x).squeeze(-1)).numpy().astype(np.float64)

    def __call__(self, state: np.ndarray, action: np.ndarray) -> float:
        return float(self.predict(np.asarray(state)[None], np.asarray(action)[None])[0])
