"""Training configuration: every field, default and preset named in the user guide.

``ILConfig`` configures BC, DAgger and GAIL (and the PPO generator GAIL uses); ``RLConfig``
configures PPO fine-tuning. Both validate in ``__post_init__`` and say what was expected.

Presets::

    ILConfig.behavioral_cloning()   # bc_epochs=100, batch 64, lr 1e-4, output ./output/bc
    ILConfig.dagger()               # 10 iterations x 20 episodes, linear beta from 1.0, 20 BC epochs
    ILConfig.gail()                 # disc 256 hidden, 5 updates, lr 3e-4, 100k timesteps
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from il_toolkit.config.dataclass_fields import from_known_fields

BETA_SCHEDULES = ("constant", "linear", "exponential")
POLICY_TYPES = ("auto", "sb3", "mlp", "flow")
DAGGER_VARIANTS = ("dagger", "hg_dagger", "ensemble_dagger", "thrifty_dagger")  # il_toolkit.train.il.gates
LR_SCHEDULES = ("constant", "cosine", "onecycle")  # il_toolkit.train.loop.lr_scheduler
KEEP_WEIGHTS = ("auto", "best", "last")  # which weights a fit keeps: ILConfig.kept_weights
ACTIVATIONS = ("relu", "tanh", "gelu", "silu")  # MLPPolicy's
ON_STUCK = ("end", "expert")  # what a DAgger rollout does once stuck (dagger_stuck_steps)
CHUNK_LABELS = ("auto", "expert_chunks", "visited")  # what DAgger labels for a chunked learner (dagger_chunk_labels)
MAX_SEED = 100
# Reset seeds of training seed s: demonstrations from s * SEED_STRIDE, DAgger's rollouts from
# s * SEED_STRIDE + ROLLOUT_SEED_OFFSET, so neither reaches the other nor the next seed's.
SEED_STRIDE = 10_000
ROLLOUT_SEED_OFFSET = 5_000


class ConfigError(ValueError):
    """A configuration value outside its allowed range or set."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _positive(name: str, value: float) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value),
        f"{name} must be a positive number, got {value!r}",
    )


def _non_negative(name: str, value: float) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and math.isfinite(value),
        f"{name} must be >= 0, got {value!r}",
    )


def _positive_int(name: str, value: int) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0, f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(name: str, value: int) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")


def _fraction(name: str, value: float, *, inclusive_high: bool = True) -> None:
    ok = isinstance(value, (int, float)) and 0.0 <= value and (value <= 1.0 if inclusive_high else value < 1.0)
    bound = "[0, 1]" if inclusive_high else "[0, 1)"
    _require(ok, f"{name} must be in {bound}, got {value!r}")


class _ConfigMixin:
    """Dict/JSON round trips shared by the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return from_known_fields(cls, data, ConfigError)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass
class ILConfig(_ConfigMixin):
    """Configuration for behavioural cloning, DAgger and GAIL (the user guide)."""

    # Behavioural cloning
    bc_epochs: int = 100
    bc_validation_split: float = 0.1

    # Training
    learning_rate: float = 1e-4
    batch_size: int = 64
    weight_decay: float = 0.01
    # mlp policies: the learning rate over each fit (each DAgger round): constant, cosine
    # (decay to 0) or onecycle (warm-up then cosine decay)
    lr_schedule: str = "constant"
    # which weights each fit (BC, every DAgger round, a flow learner) keeps: "best" (lowest validation
    # loss, training loss without a validation split), "last", or "auto": best for BC, whose validation
    # episodes are the expert's own; last for DAgger rounds (their validation episodes hold
    # learner-visited states no network predicts from the others, so validation loss bottoms out
    # early) and for flow learners (their loss is a noisy sample of the velocity error)
    keep_weights: str = "auto"
    seed: int = 0
    device: str = "cpu"

    # Demonstrations
    num_expert_episodes: int = 50
    demo_top_percentile: float | None = None  # keep episodes at or above this return percentile (seed: 70)

    # Policy trained by BC / DAgger: "sb3" (an SB3 actor-critic trained by imitation's BC),
    # "mlp" (the toolkit's MLPPolicy with normalisation), "flow" (a flow-matching policy with an MLP
    # velocity net on the env's features, action_chunk_size actions per observation, trained by the flow
    # family's loop for bc_epochs passes' worth of steps), or "auto" (sb3 for discrete actions, else mlp)
    policy_type: str = "auto"
    policy_hidden_sizes: list[int] | None = None  # None: (64, 64) for sb3, (256, 256) for mlp
    policy_activation: str = "relu"  # mlp: relu, tanh, gelu or silu
    # mlp: regress actions as offsets from the observation entries the env says they target
    # (PushT's agent position, ALOHA's joint positions: env.action_reference); False: absolute
    relative_actions: bool = True
    # mlp: leave out the observation entries the env names in env.velocity_obs (ALOHA's arm joint
    # velocities, which a learner copies instead of reading the task: the copycat problem)
    drop_velocity_obs: bool = True
    # mlp: see the state and express the actions in the env's task frame (env.policy_frame: PushT's
    # block frame, il_toolkit.features.frames); it replaces relative_actions where the env has one.
    # PushT BC-200, 100 epochs, 3 training seeds (the +-3 px expert): 51% success in the frame with the
    # mixture head; 2% in board coordinates with the MSE head (the old defaults). GAIL: its SB3 generator
    # and the discriminator work in the frame too (il_toolkit.policies.frame_policy).
    task_frame: bool = True
    # mlp, continuous actions: > 1 gives the MLP a mixture-density head of this many Gaussian
    # components, acting with the heaviest one's mean (il_toolkit.policies.mlp); 1 regresses (MSE).
    policy_mixture_components: int = 1

    # DAgger
    dagger_iterations: int = 10
    dagger_episodes_per_iter: int = 20
    dagger_beta_schedule: str = "linear"
    dagger_initial_beta: float = 1.0
    # False: each round trains a freshly initialised learner on the aggregate (Ross et al. 2011);
    # True: each round continues from the last round's weights (imitation's SimpleDAggerTrainer; a flow
    # learner keeps the normaliser it fitted on D0).
    # Which is better depends on the task: on ALOHA (D0 + 20 learner episodes, each fit's last epoch)
    # fresh 62.5% vs warm-started 45% success over 40 rollouts; on PushT (seed 0, D0 = 100 demos,
    # 4 rounds x 16 episodes) the rounds' rollouts succeeded 45/60/75/75% warm, 55/50/25/50% fresh.
    dagger_warm_start: bool = False
    # > 0: a rollout is stuck once, for this many steps in a row, each observation has repeated one
    # of the 20 before it: standing still or cycling (a learner at a fixed point or in a cycle of its
    # own action map labels the same states for the rest of the episode);
    # dagger_on_stuck then says what happens: "end" the episode there, or let the "expert" act
    # for the rest of it (its labels then show the way out). 0: rollouts run their full length.
    dagger_stuck_steps: int = 0
    dagger_on_stuck: str = "end"
    # > 0: DAgger stops once its aggregate (the initial dataset D0 included) holds this many expert
    # labels: the rollout in progress is cut there and no later round starts, so DAgger can be held
    # to the labels a BC run got (dagger_iterations is then at most the rounds). 0: no limit.
    dagger_label_budget: int = 0
    # What plain DAgger labels for a chunked learner (action_chunk_size > 1): "expert_chunks" (where the
    # learner plans, the expert acts for a chunk in a branch of the simulation that is then undone, and
    # that chunk is the target; each of its actions is a label), "visited" (the expert's labels of the
    # states the learner goes on to visit; after the first action they mostly repeat the learner's own
    # motion), or "auto": expert_chunks where the env can save and restore its simulation (ALOHA) and the
    # expert is memoryless, else visited. A chunk costs action_chunk_size + executed - 1 labels per plan
    # (with temporal_aggregation the learner plans every step). See il_toolkit.train.il.expert_chunks.
    dagger_chunk_labels: str = "auto"
    # Which DAgger: "dagger" (Ross et al.: the beta mixture acts, the expert labels every visited state),
    # "hg_dagger" (the learner acts; a person, or a model of one, takes over where it strays and labels
    # only the states it acts in), "ensemble_dagger" (K learners; the expert acts where they disagree or
    # the state is far from the training data) or "thrifty_dagger" (the expert acts where the ensemble
    # disagrees or a learned failure risk is high). See il_toolkit.train.il.gates.
    dagger_variant: str = "dagger"
    dagger_ensemble_size: int = 5  # learners in ensemble_dagger's and thrifty_dagger's ensemble
    # ensemble_dagger and thrifty_dagger set their thresholds each round so that this share of the states
    # the learner visited in the round before (round 1: the initial data) would have gone to the expert
    dagger_target_query_rate: float = 0.1
    # hg_dagger's model of a person: takes over once the learner's action is farther than this from the
    # expert's (RMS over action dimensions, in half-ranges of the action space) for dagger_reaction_steps
    # steps in a row, and hands back after dagger_settle_steps once the learner would act within it again
    dagger_intervention_threshold: float = 0.1
    dagger_reaction_steps: int = 2
    dagger_settle_steps: int = 10

    # GAIL
    gail_disc_hidden_dim: int = 256
    gail_disc_updates: int = 5
    gail_disc_lr: float = 3e-4
    gail_reward_scale: float = 1.0
    gail_disc_noise: float = 0.0  # std of Gaussian noise on discriminator inputs (the user guide's regularisation)
    # BC epochs on the demonstrations before GAIL (the user guide's best practice); the default also holds for a bare
    # ILConfig(...), as in the user guide's Python example: without it its 100k-step CartPole run ends near 49.
    # Skipped when GAIL starts from a given policy (GAIL(env, policy=bc.policy): that policy is the warm start).
    gail_bc_warm_start_epochs: int = 20
    gail_demo_batch_size: int = 1024  # expert (and generator) samples per discriminator update
    gail_n_envs: int = 8  # parallel envs for the PPO generator; ppo_n_steps is split across them
    total_timesteps: int = 100000

    # PPO (GAIL's generator)
    ppo_epochs: int = 4
    ppo_clip_range: float = 0.2
    ppo_gae_lambda: float = 0.95
    ppo_n_steps: int = 2048
    ppo_gamma: float = 0.99

    # Action chunking (ACT-style)
    action_chunk_size: int = 1
    temporal_aggregation: bool = False

    # Evaluation and output
    eval_episodes: int = 50
    output_dir: str = "./output/il"
    use_wandb: bool = False
    wandb_project: str = "il_toolkit"

    def __post_init__(self) -> None:
        _positive_int("bc_epochs", self.bc_epochs)
        _fraction("bc_validation_split", self.bc_validation_split, inclusive_high=False)
        _positive("learning_rate", self.learning_rate)
        _positive_int("batch_size", self.batch_size)
        _non_negative("weight_decay", self.weight_decay)
        _require(self.lr_schedule in LR_SCHEDULES,
                 f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        _require(self.keep_weights in KEEP_WEIGHTS,
                 f"keep_weights must be one of {', '.join(KEEP_WEIGHTS)}; got {self.keep_weights!r}")
        _require(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < MAX_SEED,
            f"seed must be an integer in [0, {MAX_SEED}), got {self.seed!r} (seed s demonstrates from reset seeds "
            f"s*{SEED_STRIDE}...; evaluation uses 1,000,000 and up, so larger seeds would collide with it)",
        )
        _positive_int("num_expert_episodes", self.num_expert_episodes)
        _require(self.num_expert_episodes <= ROLLOUT_SEED_OFFSET,
                 f"num_expert_episodes must be at most {ROLLOUT_SEED_OFFSET} (the reset seeds a training seed keeps for "
                 f"demonstrations), got {self.num_expert_episodes}; collect a larger dataset and pass it with --dataset")
        if self.demo_top_percentile is not None:
            _require(
                isinstance(self.demo_top_percentile, (int, float)) and 0 <= self.demo_top_percentile < 100,
                f"demo_top_percentile must be in [0, 100) or None, got {self.demo_top_percentile!r}",
            )
        _require(self.policy_type in POLICY_TYPES, f"policy_type must be one of {', '.join(POLICY_TYPES)}; got {self.policy_type!r}")
        if self.policy_hidden_sizes is not None:
            _require(
                all(isinstance(h, int) and h > 0 for h in self.policy_hidden_sizes),
                f"policy_hidden_sizes must be positive integers, got {self.policy_hidden_sizes!r}",
            )
        _require(self.policy_activation in ACTIVATIONS,
                 f"policy_activation must be one of {', '.join(ACTIVATIONS)}; got {self.policy_activation!r}")
        for name in ("relative_actions", "drop_velocity_obs", "task_frame", "dagger_warm_start"):
            _require(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        _positive_int("policy_mixture_components", self.policy_mixture_components)
        _positive_int("dagger_iterations", self.dagger_iterations)
        _positive_int("dagger_episodes_per_iter", self.dagger_episodes_per_iter)
        rollouts = self.dagger_iterations * self.dagger_episodes_per_iter
        _require(rollouts <= SEED_STRIDE - ROLLOUT_SEED_OFFSET,
                 f"dagger_iterations x dagger_episodes_per_iter must be at most {SEED_STRIDE - ROLLOUT_SEED_OFFSET} "
                 f"(the reset seeds a training seed keeps for DAgger's rollouts), got {rollouts}: lower one of them")
        _require(
            self.dagger_beta_schedule in BETA_SCHEDULES,
            f"dagger_beta_schedule must be one of {', '.join(BETA_SCHEDULES)}; got {self.dagger_beta_schedule!r}",
        )
        _fraction("dagger_initial_beta", self.dagger_initial_beta)
        _non_negative_int("dagger_stuck_steps", self.dagger_stuck_steps)
        _non_negative_int("dagger_label_budget", self.dagger_label_budget)
        _require(self.dagger_variant in DAGGER_VARIANTS,
                 f"dagger_variant must be one of {', '.join(DAGGER_VARIANTS)}; got {self.dagger_variant!r}")
        _require(isinstance(self.dagger_ensemble_size, int) and self.dagger_ensemble_size >= 2,
                 f"dagger_ensemble_size must be an integer >= 2, got {self.dagger_ensemble_size!r}")
        _require(isinstance(self.dagger_target_query_rate, (int, float)) and 0 < self.dagger_target_query_rate <= 1,
                 f"dagger_target_query_rate must be in (0, 1] (the share of states sent to the expert), got "
                 f"{self.dagger_target_query_rate!r}")
        _require(isinstance(self.dagger_intervention_threshold, (int, float)) and 0 < self.dagger_intervention_threshold <= 2,
                 f"dagger_intervention_threshold must be in (0, 2] (action distance in half-ranges of the action "
                 f"space; 2 is as far apart as two actions can be), got {self.dagger_intervention_threshold!r}")
        _positive_int("dagger_reaction_steps", self.dagger_reaction_steps)
        _positive_int("dagger_settle_steps", self.dagger_settle_steps)
        _require(self.dagger_chunk_labels in CHUNK_LABELS,
                 f"dagger_chunk_labels must be one of {', '.join(CHUNK_LABELS)}; got {self.dagger_chunk_labels!r}")
        _require(self.dagger_on_stuck in ON_STUCK,
                 f"dagger_on_stuck must be one of {', '.join(ON_STUCK)}; got {self.dagger_on_stuck!r}")
        _positive_int("gail_disc_hidden_dim", self.gail_disc_hidden_dim)
        _positive_int("gail_disc_updates", self.gail_disc_updates)
        _positive("gail_disc_lr", self.gail_disc_lr)
        _positive("gail_reward_scale", self.gail_reward_scale)
        _non_negative("gail_disc_noise", self.gail_disc_noise)
        _non_negative_int("gail_bc_warm_start_epochs", self.gail_bc_warm_start_epochs)
        _positive_int("gail_demo_batch_size", self.gail_demo_batch_size)
        _positive_int("gail_n_envs", self.gail_n_envs)
        _positive_int("total_timesteps", self.total_timesteps)
        _positive_int("ppo_epochs", self.ppo_epochs)
        _fraction("ppo_clip_range", self.ppo_clip_range)
        _fraction("ppo_gae_lambda", self.ppo_gae_lambda)
        _positive_int("ppo_n_steps", self.ppo_n_steps)
        _fraction("ppo_gamma", self.ppo_gamma)
        _positive_int("action_chunk_size", self.action_chunk_size)
        _positive_int("eval_episodes", self.eval_episodes)
        _require(bool(self.output_dir), "output_dir must be a non-empty path")

    def validate(self) -> "ILConfig":
        """Check every field again: a field set on a constructed config (``config.batch_size = 0``)
        is caught here, before any work, with the message construction would give."""
        self.__post_init__()
        return self

    @property
    def trains_flow(self) -> bool:
        """BC and DAgger train a flow-matching policy: ``policy_type="flow"``, or chunks of actions."""
        return self.policy_type == "flow" or self.action_chunk_size > 1

    @property
    def executed_per_chunk(self) -> int:
        """Actions a chunked policy executes of each chunk before it plans again: 1 with
        ``temporal_aggregation`` (it re-plans every step), else the whole ``action_chunk_size``."""
        return 1 if self.temporal_aggregation else self.action_chunk_size

    def kept_weights(self, fit: str) -> str:
        """"best" or "last": the weights a ``fit`` ("bc", "dagger_round" or "flow") keeps under ``keep_weights``."""
        if self.keep_weights != "auto":
            return self.keep_weights
        return "best" if fit == "bc" else "last"

    # -- presets -----------------------------------------------------------------------
    @classmethod
    def behavioral_cloning(cls, **overrides: Any) -> "ILConfig":
        """The user guide's BC defaults: 100 epochs, batch 64, lr 1e-4, 10% validation."""
        return cls(**{"output_dir": "./output/bc", **overrides})

    @classmethod
    def dagger(cls, **overrides: Any) -> "ILConfig":
        """The user guide's DAgger defaults: 10 iterations of 20 episodes, linear beta from 1.0, 20 BC epochs."""
        return cls(**{"bc_epochs": 20, "output_dir": "./output/dagger", **overrides})

    @classmethod
    def gail(cls, **overrides: Any) -> "ILConfig":
        """The user guide's GAIL defaults (discriminator 256 hidden, 5 updates, lr 3e-4; PPO lr 3e-4),
        with its best practice of warm-starting the generator (``gail_bc_warm_start_epochs``,
        20 by default)."""
        return cls(**{"learning_rate": 3e-4, "output_dir": "./output/gail", **overrides})


@dataclass
class RLConfig(_ConfigMixin):
    """PPO fine-tuning of an imitation-learned policy (``PPOTrainer``)."""

    total_timesteps: int = 100000
    learning_rate: float = 3e-4
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    n_envs: int = 1  # parallel envs; n_steps is split across them
    # the SB3 policy sees the env's task frame (PushT) where it has one, as GAIL's generator does
    # (il_toolkit.policies.frame_policy); a policy given in another form is distilled there
    task_frame: bool = True
    eval_episodes: int = 50
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "./output/ppo"
    use_wandb: bool = False
    wandb_project: str = "il_toolkit"

    def __post_init__(self) -> None:
        _positive_int("total_timesteps", self.total_timesteps)
        _positive("learning_rate", self.learning_rate)
        _positive_int("n_steps", self.n_steps)
        _positive_int("batch_size", self.batch_size)
        _positive_int("n_epochs", self.n_epochs)
        _fraction("gamma", self.gamma)
        _fraction("gae_lambda", self.gae_lambda)
        _fraction("clip_range", self.clip_range)
        _non_negative("ent_coef", self.ent_coef)
        _positive_int("n_envs", self.n_envs)
        _positive_int("eval_episodes", self.eval_episodes)


def get_beta(iteration: int, schedule: str, initial_beta: float, num_iterations: int) -> float:
    """The probability of acting with the expert in DAgger round ``iteration`` (the user guide)."""
    if schedule == "constant":
        return initial_beta
    if schedule == "linear":
        return max(0.0, initial_beta * (1 - iteration / num_iterations))
    if schedule == "exponential":
        return initial_beta * (0.9**iteration)
    raise ConfigError(f"dagger_beta_schedule must be one of {', '.join(BETA_SCHEDULES)}; got {schedule!r}")
