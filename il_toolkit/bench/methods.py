"""``METHOD_REGISTRY``: benchmark method names -> adapter functions (imported lazily).

An adapter trains one policy from an expert Minari dataset under one training budget::

    adapter(request: TrainRequest) -> TrainOutcome

and must be deterministic given ``request.seed``. Metadata per method (read without importing
anything heavy): ``action_spaces`` (the action-space kinds it can learn: ``"discrete"``,
``"box"``), ``observations`` (``"state"``: flat vectors; ``"pixels"``: images or dicts of
them; ``"instructed_state"``: a flat state whose env names the goal in the instruction, declared
by its ``goal_frame``, such as the two-target PushT), ``extra_budget_keys`` (budget keys besides ``ILConfig`` fields), ``interactive``
(queries the expert during training) and ``description``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from il_toolkit.registry import Registry


@dataclass(frozen=True)
class TrainRequest:
    """What a method is asked to do in one trial.

    ``dataset_id`` names a local Minari dataset of exactly ``n_demos`` expert episodes of
    ``env_id``; ``budget`` holds ``ILConfig`` overrides (``bc_epochs``, ``total_timesteps`` ...)
    plus the method's ``extra_budget_keys``; ``output_dir`` is an empty directory the method owns.
    """

    env_id: str
    dataset_id: str
    n_demos: int
    seed: int
    budget: dict[str, Any]
    output_dir: str
    progress: bool = False
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"obs_type": "pixels"}


@dataclass(frozen=True)
class TrainOutcome:
    """A trained policy: its checkpoint directory (``il_toolkit.policies.load`` restores it),
    the number of expert action labels it consumed (demonstration transitions, plus every
    state DAgger asked the expert about) and method-specific figures."""

    policy_path: str
    expert_labels: int
    extra: dict[str, Any] = field(default_factory=dict)


METHOD_REGISTRY: Registry = Registry("benchmark method")
_ADAPTERS = "il_toolkit.bench.adapters"
METHOD_REGISTRY.register(
    "bc", indirect=f"{_ADAPTERS}:train_bc", action_spaces=("discrete", "box"), observations=("state",), extra_budget_keys=(),
    interactive=False, description="behavioural cloning (imitation's BC for discrete actions, MLPPolicy for continuous)",
)
METHOD_REGISTRY.register(
    "dagger", indirect=f"{_ADAPTERS}:train_dagger", action_spaces=("discrete", "box"), observations=("state",), extra_budget_keys=(),
    interactive=True, description="DAgger: the demonstrations as D0, then rounds labelled by the env's scripted expert",
)
for _variant, _paper in (("hg_dagger", "HG-DAgger (Kelly et al. 2019): the learner acts, a model of a person takes "
                                       "over where it strays from the expert and labels only those states"),
                         ("ensemble_dagger", "EnsembleDAgger (Menda et al. 2019): an ensemble of learners, the expert "
                                             "acts where they disagree or the state is far from the data"),
                         ("thrifty_dagger", "ThriftyDAgger (Hoque et al. 2021): the expert acts where the ensemble "
                                            "disagrees or a learned failure risk is high")):
    METHOD_REGISTRY.register(
        _variant, indirect=f"{_ADAPTERS}:train_{_variant}", action_spaces=("discrete", "box") if _variant == "hg_dagger"
        else ("box",), observations=("state",), extra_budget_keys=(), interactive=True,
        description=f"{_paper}; the demonstrations are D0",
    )
METHOD_REGISTRY.register(
    "gail", indirect=f"{_ADAPTERS}:train_gail", action_spaces=("discrete", "box"), observations=("state",), extra_budget_keys=(),
    interactive=False, description="GAIL (imitation) with a PPO generator, trained in the env's fixed-horizon version",
)
METHOD_REGISTRY.register(
    "flow_bc", indirect=f"{_ADAPTERS}:train_flow_bc", action_spaces=("box",), observations=("state", "pixels"),
    extra_budget_keys=("flow_trainer", "flow_n_steps", "flow_d_model"),
    interactive=False,
    description="a flow-matching policy (TRAINER_REGISTRY family, naive by default; one observation, one action) "
    "trained by BC's supervised loop on its flow-matching loss",
)
METHOD_REGISTRY.register(
    "flow_chunked", indirect=f"{_ADAPTERS}:train_flow_chunked", action_spaces=("box",),
    observations=("state", "pixels", "instructed_state"),  # on an instructed state: blind to the instruction
    extra_budget_keys=("flow_trainer", "flow_steps", "flow_horizon", "flow_n_obs_steps", "flow_n_action_steps",
                       "flow_n_steps", "flow_d_model"),
    interactive=False,
    description="a chunked flow-matching policy (diffusion-policy style: n_obs_steps observations in, a horizon of "
    "actions out) trained by its TRAINER_REGISTRY family's own trainer (naive by default)",
)

METHOD_REGISTRY.register(
    "flow_estimated_state", indirect=f"{_ADAPTERS}:train_flow_estimated_state", action_spaces=("box",),
    observations=("pixels",), interactive=False,
    extra_budget_keys=("flow_steps", "estimator_steps", "estimator_stride", "recombined_frames", "locate_steps",
                       "noisy_copies", "state_noise"),
    description="pixels through an estimated state: a flow-matching policy on the full state recorded beside the "
    "demonstrations, behind a keypoint CNN that estimates it from the cameras (the state supervises training only)",
)

METHOD_REGISTRY.register(
    "vla", indirect=f"{_ADAPTERS}:train_vla", action_spaces=("box",), observations=("pixels",),
    extra_budget_keys=("vla_steps",), interactive=False,
    description="the built-in small vision-language-action model by VLA BC, its cameras read by a keypoint state "
    "estimator learned in the same loop from the state recorded beside the demonstrations (training only)",
)

METHOD_REGISTRY.register(
    "flow_instructed", indirect=f"{_ADAPTERS}:train_flow_instructed", action_spaces=("box",),
    observations=("instructed_state",), extra_budget_keys=("flow_steps", "grounder_steps"), interactive=False,
    description="instructions that name the goal: a flow-matching policy on the demonstrations moved into their "
    "goal's frame, behind an instruction grounder (the goal recorded beside the demonstrations supervises training only)",
)


def observation_kind(space: Any, env: Any = None) -> str:
    """``"state"`` for a flat Box vector (``"instructed_state"`` where ``env`` declares a
    ``goal_frame``: the instruction names the goal), ``"pixels"`` for anything else (images, dicts)."""
    from gymnasium import spaces

    if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
        return "pixels"
    return "instructed_state" if getattr(getattr(env, "unwrapped", None), "goal_frame", None) else "state"


def action_space_kind(space: Any) -> str:
    """``"discrete"`` or ``"box"`` (anything else is named by its class)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return "discrete"
    if isinstance(space, spaces.Box):
        return "box"
    return type(space).__name__.lower()


__all__ = ["METHOD_REGISTRY", "TrainOutcome", "TrainRequest", "action_space_kind", "observation_kind"]
