"""PPO fine-tuning of an imitation-learned policy (the user guide, "Combining IL with RL").

Python::

    from il_toolkit.train.online_rl.ppo_trainer import PPOTrainer
    from il_toolkit.config.training_config import RLConfig

    rl_trainer = PPOTrainer(env, policy=bc_trainer.policy, config=RLConfig(total_timesteps=100000, learning_rate=1e-5))
    results = rl_trainer.train()

The starting policy (an :class:`SB3Policy`, an SB3 ``ActorCriticPolicy`` or an SB3 model) is
copied, weights and architecture, into a stable-baselines3 PPO that then trains on the env's
own reward; any other policy (BC's MLP on continuous actions, a flow policy, a VLA) is first
distilled into a fresh SB3 actor-critic on the states it visits (:func:`distill`: PPO cannot
train the original's own architecture). A distilled copy is only as good as the SB3 network can
imitate: on PushT state, an 86%-success MLP (BC/DAgger's, mixture head) distilled into a (64, 64)
SB3 policy (200 epochs on 20 of its episodes) reached 2% success, avg max reward 0.33, in the
task frame (``RLConfig.task_frame``), and 0%, 0.09, on board coordinates (100 episodes each).

A run writes, under ``config.output_dir``: ``config.json`` (the RLConfig),
``run.json``, ``metrics.jsonl`` (SB3's ``rollout/`` and ``train/`` records per PPO
iteration), ``best/`` and ``last/`` (the same final policy: PPO keeps no validation signal)
and ``eval.json``.

:func:`start_ppo` (the starting policy, copied or distilled) is shared with GAIL's generator.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from il_toolkit.config.training_config import RLConfig
from il_toolkit.policies import SB3Policy, check_spaces
from il_toolkit.policies.frame_policy import FrameEnv, FrameSB3Policy, FrameUnits, frame_units_for, in_learner_units
from il_toolkit.policies.spaces import is_unit_twin, unit_action_space
from il_toolkit.train.logging import MetricLogger
from il_toolkit.train.sb3_glue import capture_writer, timestep_bar

DEFAULT_NET_ARCH = [64, 64]


def sb3_actor_critic(policy: Any) -> Any:
    """The SB3 ``ActorCriticPolicy`` inside ``policy`` (an SB3Policy, SB3 model or policy)."""
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import ActorCriticPolicy

    inner = policy.policy if isinstance(policy, (SB3Policy, BaseAlgorithm)) else policy
    if not isinstance(inner, ActorCriticPolicy):
        raise TypeError(
            f"PPO needs an SB3 actor-critic policy to start from, got {type(inner).__name__}: train the "
            "policy with BehavioralCloning and policy_type='sb3' (an SB3 ActorCriticPolicy), or pass policy=None"
        )
    return inner


def unit_actor_critic(policy: Any, env_action_space: Any) -> Any:
    """The SB3 actor-critic in ``policy`` ready to train in [-1, 1] action units for an env with
    ``env_action_space`` (:func:`unit_action_space`): a rescaling :class:`SB3Policy` gives its
    own; one that acts in env units (BC with ``policy_type='sb3'``, a user's model) is converted
    exactly: the Gaussian's mean layer and log-std are mapped by the same linear change of units,
    so the converted policy's action distribution, mapped back, is the original's."""
    inner = sb3_actor_critic(policy)
    unit = unit_action_space(env_action_space)
    if unit is None or is_unit_twin(inner.action_space, env_action_space) or inner.action_space.shape != unit.shape:
        return inner  # nothing to convert, or another env's policy (build_ppo's space check names it)
    if getattr(inner, "use_sde", False) or not hasattr(inner, "log_std"):
        raise TypeError(
            f"cannot move {type(inner).__name__} (gSDE or non-Gaussian actions) from env units to [-1, 1]: start from "
            "a policy trained by this toolkit's GAIL or PPO, or pass policy=None"
        )
    params = dict(inner._get_constructor_parameters())
    params.update(action_space=unit, lr_schedule=lambda _: 0.0)
    converted = type(inner)(**params)
    converted.load_state_dict(inner.state_dict())
    low = torch.as_tensor(env_action_space.low, dtype=torch.float32)
    high = torch.as_tensor(env_action_space.high, dtype=torch.float32)
    centre, half = (high + low) / 2, (high - low) / 2
    with torch.no_grad():
        converted.action_net.weight.div_(half[:, None])
        converted.action_net.bias.sub_(centre).div_(half)
        converted.log_std.sub_(torch.log(half))
    converted.set_training_mode(False)
    return converted


def build_ppo(
    venv: Any,
    *,
    policy: Any = None,
    learning_rate: float,
    n_steps: int,
    batch_size: int,
    n_epochs: int,
    gamma: float,
    gae_lambda: float,
    clip_range: float,
    ent_coef: float,
    seed: int,
    device: str,
    what: str = "starting policy",
    fix: str = "start from a policy trained on this env",
    env_action_space: Any = None,
) -> Any:
    """An SB3 PPO on ``venv``; with ``policy``, same architecture and a copy of its weights.

    ``n_steps`` is per environment (SB3's meaning). ``env_action_space``: the env's, when
    ``venv`` acts in its [-1, 1] twin (the policy is brought to those units, see
    :func:`unit_actor_critic`). Raises ``SpaceMismatchError`` when the policy's spaces do not
    fit the env's (message ends with ``fix``).
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy

    policy_class: type = (MultiInputActorCriticPolicy if isinstance(venv.observation_space, gym.spaces.Dict)
                          else ActorCriticPolicy)
    policy_kwargs: dict[str, Any] = {"net_arch": DEFAULT_NET_ARCH}
    use_sde = False
    start = None
    if policy is not None:
        start = sb3_actor_critic(policy) if env_action_space is None else unit_actor_critic(policy, env_action_space)
        check_spaces(what, start.observation_space, start.action_space, venv.observation_space, venv.action_space, fix=fix)
        policy_class = type(start)
        params = start._get_constructor_parameters()
        # PPO passes the spaces, the schedule and use_sde itself
        policy_kwargs = {k: v for k, v in params.items()
                         if k not in ("observation_space", "action_space", "lr_schedule", "use_sde")}
        use_sde = bool(params.get("use_sde", False))
    model = PPO(
        policy_class, venv, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
        gamma=gamma, gae_lambda=gae_lambda, clip_range=clip_range, ent_coef=ent_coef, seed=seed, device=device,
        policy_kwargs=policy_kwargs, use_sde=use_sde, verbose=0,
    )
    if start is not None:
        model.policy.load_state_dict(start.state_dict())
    return model


DISTILL_EPISODES = 20  # teacher rollouts whose states an SB3 copy of a non-SB3 policy learns from
DISTILL_EPOCHS = 200  # PushT expert into a (64, 64) policy in its frame: action MSE 0.053 at 50 epochs, 0.021 at 200


def is_actor_critic(policy: Any) -> bool:
    """Whether ``policy`` is (or wraps) an SB3 actor-critic that PPO can start from as it is."""
    try:
        sb3_actor_critic(policy)
    except TypeError:
        return False
    return True


def start_ppo(venv: Any, env: gym.Env, policy: Any = None, units: FrameUnits | None = None, *,
              progress: bool = False, **ppo: Any) -> tuple[Any, dict[str, float] | None]:
    """:func:`build_ppo` from ``policy``, whatever it is: an SB3 actor-critic is copied, weights and
    architecture; any other policy (the toolkit's MLP, a flow policy, an expert, a function) is
    distilled into a fresh (64, 64) actor-critic on the states it visits in ``env`` (:func:`distill`).
    With ``units`` (``venv`` is a :class:`FrameEnv`), a :class:`FrameSB3Policy` in the same frame
    is copied and any other policy distilled in the frame. Returns ``(model, the distillation's
    figures or None)``."""
    from il_toolkit.policies import as_policy

    copy = policy is None or (units is None and is_actor_critic(policy))
    if units is not None and isinstance(policy, FrameSB3Policy) and policy.units.name == units.name:
        policy, copy = policy.inner, True
    if copy:
        return build_ppo(venv, policy=policy, **ppo), None
    teacher = as_policy(policy, env.observation_space, env.action_space)
    check_spaces(ppo.get("what", "starting policy"), teacher.observation_space, teacher.action_space,
                 env.observation_space, env.action_space, fix=ppo.get("fix", "start from a policy trained on this env"))
    model = build_ppo(venv, **ppo)
    return model, distill(teacher, model.policy, env, seed=ppo["seed"], device=ppo["device"], units=units,
                          progress=progress)


def distill(teacher: Any, student: Any, env: gym.Env, *, seed: int, device: str = "cpu",
            episodes: int = DISTILL_EPISODES, epochs: int = DISTILL_EPOCHS, batch_size: int = 256,
            learning_rate: float = 1e-3, units: FrameUnits | None = None, progress: bool = False) -> dict[str, float]:
    """Behavioural cloning of the SB3 actor-critic ``student`` on the deterministic actions of
    ``teacher`` (a toolkit Policy) in the states the teacher visits in ``env`` (``episodes``
    rollouts, reset seeds from ``seed``), in the student's units: [-1, 1] where the env's Box
    bounds are other, or ``units``' features and frame actions. Returns ``distill/transitions``,
    ``distill/seconds`` and how close the student got on those states: ``distill/action_mse``
    (Box; student units) or ``distill/action_agreement`` (Discrete; fraction of equal actions)."""
    from imitation.data.rollout import flatten_trajectories

    from il_toolkit.rollout import generate_trajectories
    from il_toolkit.train.sb3_glue import bc_warm_start

    start = time.perf_counter()
    raw = flatten_trajectories(generate_trajectories(teacher, env, range(seed, seed + episodes), progress=progress,
                                                     desc="distil the starting policy into PPO's network: rollouts"))
    transitions = in_learner_units(raw, toolkit_policy(student, env, units))
    layout = {key: _channels_first(getattr(transitions, key), student.observation_space) for key in ("obs", "next_obs")}
    bc_warm_start(student, dataclasses.replace(transitions, **layout), epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, rng=np.random.default_rng(seed), device=device)
    obs = transitions.obs.unwrap() if hasattr(transitions.obs, "unwrap") else transitions.obs
    predicted, _ = student.predict(obs, deterministic=True)  # SB3 transposes images here itself
    stats = {"distill/transitions": float(len(transitions)), "distill/seconds": time.perf_counter() - start}
    if isinstance(env.action_space, gym.spaces.Discrete):
        stats["distill/action_agreement"] = float(np.mean(predicted == transitions.acts))
    else:
        stats["distill/action_mse"] = float(np.mean((predicted - transitions.acts) ** 2))
    return stats


def _channels_first(obs: Any, space: gym.Space) -> Any:
    """Batched observations (array or imitation ``DictObs``) as PPO hands them to an SB3 policy:
    channel-last images (B, H, W, C) transposed to the policy's (B, C, H, W) (``VecTransposeImage``)."""
    from imitation.data.types import DictObs
    from stable_baselines3.common.vec_env import VecTransposeImage

    if isinstance(obs, DictObs):
        return DictObs({key: _channels_first(value, space[key]) for key, value in obs.items()})
    if obs.shape[1:] != space.shape and obs.shape[1:] == space.shape[1:] + space.shape[:1]:
        return VecTransposeImage.transpose_image(obs)
    return obs


def learner_units(env: gym.Env, policy: Any, task_frame: bool) -> FrameUnits | None:
    """The task frame an SB3 learner for ``env`` works in: a :class:`FrameSB3Policy`'s own frame
    (it is copied); else the env's (``policy_frame``) when ``task_frame`` is on, unless the
    starting ``policy`` is an SB3 actor-critic on the raw env, which is copied exactly and so
    keeps its own units."""
    if isinstance(policy, FrameSB3Policy):
        return policy.units
    return frame_units_for(env) if task_frame and not is_actor_critic(policy) else None


def learner_env(env: gym.Env, units: FrameUnits | None) -> gym.Env:
    """``env`` as an SB3 learner acts in it: in the task frame's units (:class:`FrameEnv`), or with
    [-1, 1] actions (:func:`in_unit_actions`)."""
    return FrameEnv(env, units) if units is not None else in_unit_actions(env)


def toolkit_policy(sb3_policy: Any, env: gym.Env, units: FrameUnits | None) -> SB3Policy | FrameSB3Policy:
    """The toolkit policy acting on ``env`` with an SB3 actor-critic trained in :func:`learner_env`."""
    if units is None:
        return SB3Policy(sb3_policy, action_space=env.action_space, observation_space=env.observation_space)
    return FrameSB3Policy(SB3Policy(sb3_policy), units.name, env.observation_space, env.action_space)


def in_unit_actions(env: gym.Env) -> gym.Env:
    """``env`` taking [-1, 1] actions when its Box actions have other finite bounds (the units
    SB3's PPO trains in, see :func:`unit_action_space`), else ``env`` itself."""
    if unit_action_space(env.action_space) is None:
        return env
    return gym.wrappers.RescaleAction(env, -1.0, 1.0)


class PPOTrainer:
    """Fine-tune a policy with PPO on the env's reward (the user guide's BC -> RL recipe).

    Args:
        env: the env (instance or id); training uses ``config.n_envs`` copies of its id.
        policy: where to start: an :class:`SB3Policy` (e.g. ``BehavioralCloning(...).policy``),
            an SB3 ``ActorCriticPolicy`` or model (copied, in its own units); a
            :class:`FrameSB3Policy` (copied in its frame); any other policy, such as BC's MLP on
            continuous actions, is distilled into a fresh (64, 64) MLP, in the env's task frame
            where ``config.task_frame`` is on (:func:`start_ppo`; its figures in ``self.distilled``,
            logged and returned); ``None`` trains a fresh (64, 64) MLP (in the frame likewise).
        config: an :class:`RLConfig`.
        progress: show progress bars (PPO's timesteps, the evaluation).
    """

    def __init__(self, env: str | gym.Env, policy: Any = None, config: RLConfig | None = None, *,
                 use_wandb: bool | None = None, progress: bool = True) -> None:
        from stable_baselines3.common.env_util import make_vec_env

        from il_toolkit.train.il import common

        self.config = config if config is not None else RLConfig()
        self.env = common.resolve_env(env)
        self.env_id = common.env_id_of(self.env)
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.progress = progress
        common.seed_everything(self.config.seed)
        n_envs = self.config.n_envs
        spec = self.env.spec  # keeps the keyword arguments the env was made with (obs_type=...)
        self.units = learner_units(self.env, policy, self.config.task_frame)
        units = self.units
        self.venv = make_vec_env(lambda: learner_env(gym.make(spec), units), n_envs=n_envs, seed=self.config.seed)
        self.model, self.distilled = start_ppo(
            self.venv, self.env, policy, units=self.units, learning_rate=self.config.learning_rate,
            n_steps=max(1, self.config.n_steps // n_envs), batch_size=self.config.batch_size,
            n_epochs=self.config.n_epochs, gamma=self.config.gamma, gae_lambda=self.config.gae_lambda,
            clip_range=self.config.clip_range, ent_coef=self.config.ent_coef, seed=self.config.seed,
            device=self.config.device, fix=f"fine-tune a policy trained on {self.env_id}",
            env_action_space=self.env.action_space, progress=self.progress,
        )
        self.policy = toolkit_policy(self.model.policy, self.env, self.units)

    def train(self, total_timesteps: int | None = None, *, evaluate_policy: bool = True) -> dict[str, Any]:
        """Run PPO for ``total_timesteps`` (default ``config.total_timesteps``), save, evaluate."""
        from stable_baselines3.common.logger import Logger

        from il_toolkit.evaluation import evaluate_and_report
        from il_toolkit.train.il import common

        steps = total_timesteps or self.config.total_timesteps
        out = Path(self.config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.config.save(out / "config.json")
        (out / "run.json").write_text(json.dumps({
            "algorithm": "ppo", "env_id": self.env_id, "total_timesteps": steps, "n_envs": self.config.n_envs,
        }, indent=2))
        logger = MetricLogger(out, use_wandb=self.use_wandb, project=self.config.wandb_project,
                              run_name=f"ppo-{self.env_id}-s{self.config.seed}", config=self.config.to_dict())
        self.model.set_logger(Logger(folder=None, output_formats=[capture_writer(
            lambda record, step: logger.log(record, step=self.model.num_timesteps))]))
        if self.distilled is not None:
            logger.log(self.distilled, step=0)
        start = time.perf_counter()
        try:
            self.model.learn(total_timesteps=steps, reset_num_timesteps=False,
                             callback=timestep_bar(steps, f"PPO {self.env_id}", disable=not self.progress))
        finally:
            logger.close()
        seconds = time.perf_counter() - start
        self.model.policy.set_training_mode(False)
        common.mark_trained_in(self.policy, self.env)
        self.policy.save(out / "last")
        best = self.policy.save(out / "best")
        results: dict[str, Any] = {
            "policy_path": str(best), "last_policy_path": str(out / "last"),
            "total_timesteps": int(self.model.num_timesteps), "train_seconds": seconds, "distilled": self.distilled,
        }
        if evaluate_policy:
            results["eval"] = evaluate_and_report(self.policy, self.env, self.config.eval_episodes, out / "eval.json",
                                                  progress=self.progress)
        return results
