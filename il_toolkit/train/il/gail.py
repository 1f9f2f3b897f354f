"""Generative adversarial imitation learning as the user guide describes it, built on imitation's
GAIL with a stable-baselines3 PPO generator.

Python::

    from il_toolkit import GAIL, ILConfig
    trainer = GAIL(env=gym.make("CartPole-v1"), config=ILConfig.gail(gail_disc_hidden_dim=256, gail_disc_updates=5))
    results = trainer.train(expert_policy=expert_policy, num_expert_episodes=50, total_timesteps=100000)
    # expert_policy: a function obs -> action, a Policy, an SB3 model, a Minari dataset id,
    # or None for the env's registered expert; or train(dataset="cartpole/lqr-v0")

    GAIL(env, policy=bc_trainer.policy).train()    # the user guide's "warm-starting GAIL" (else gail_bc_warm_start_epochs)

Command line::

    python -m il_toolkit.train.il.gail --env CartPole-v1 --num_expert_episodes 50 \
        --total_timesteps 100000 --gail_disc_hidden_dim 256 --gail_disc_updates 5 --output_dir ./output/gail

Fixed horizons. Adversarial IL must not see episodes end early: the episode length itself
tells the generator where the reward is (imitation refuses variable horizons). So GAIL
trains in a fixed-horizon version of the env and is evaluated in the env the user asked for:

- an env with a registered fixed-horizon variant trains there (``CartPole-v1`` ->
  ``il_toolkit/CartPoleFixedHorizon-v1``, seals-style: never terminates, reward 1 while upright);
- any other env with a time limit gets seals' ``AbsorbAfterDoneWrapper`` inside its time
  limit: termination turns into an absorbing state (last observation repeated) until the
  horizon, so every episode has the same length and spaces are unchanged;
- an env without a time limit has no horizon to fix: imitation's ``allow_variable_horizon``
  is switched on and a warning is logged.

Demonstrations from a live expert are collected in the training env; demonstrations from a
dataset are used as transitions (their lengths do not matter to the discriminator).

A run writes, under ``output_dir``: ``config.json``, ``run.json``, ``metrics.jsonl`` (per
round: ``disc_loss``, ``disc_acc``, ``mean_reward`` — the mean GAIL reward per step PPO saw —,
``train/loss`` — the generator's PPO loss (policy + value + entropy terms), as in the user guide's
metrics table —, imitation's ``disc/...`` and ``gen/...`` records, and ``eval/mean_return`` when evaluating
during training), ``best/`` and ``last/`` (SB3Policy or FrameSB3Policy checkpoints; best = highest return in the
in-training evaluations, else the last policy) and ``eval.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from il_toolkit.config.training_config import ILConfig
from il_toolkit.evaluation import evaluate, evaluate_and_report
from il_toolkit.policies import as_policy, check_spaces
from il_toolkit.policies.base import Policy
from il_toolkit.policies.frame_policy import in_learner_units
from il_toolkit.rollout import generate_trajectories
from il_toolkit.train.il import common
from il_toolkit.train.il.vla import VLAGAIL  # noqa: F401  (the user guide imports it from here)
from il_toolkit.train.sb3_glue import bc_warm_start
from il_toolkit.train.logging import MetricLogger

# Envs whose episodes end early, and their fixed-horizon twins (registered in envs/registration.py).
FIXED_HORIZON_VARIANTS = {"il_toolkit/CartPole-v1": "il_toolkit/CartPoleFixedHorizon-v1"}
IN_TRAINING_EVAL_SEED = 2_000_000  # apart from the final evaluation's seeds (1,000,000 and up)
GAIL_CONSOLE = ("round", "timesteps", "disc_acc", "disc_loss", "mean_reward", "train/loss", "eval/mean_return",
                "eval/pc_success")  # a round's console line; metrics.jsonl has every figure


# -- fixed horizons ----------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingEnv:
    """How GAIL's training env relates to the user's env.

    ``make()`` builds one training env; ``horizon`` is its fixed episode length (None: variable).
    """

    env_id: str
    handling: str  # "fixed-horizon variant" | "absorbing state" | "variable horizon"
    horizon: int | None
    make: Callable[[], gym.Env] = field(compare=False, repr=False)

    @property
    def allow_variable_horizon(self) -> bool:
        return self.horizon is None


def training_env_for(env: gym.Env) -> TrainingEnv:
    """The fixed-horizon env GAIL trains in for ``env`` (see the module docstring)."""
    from il_toolkit.envs import canonical_env_id, make_env

    env_id = common.env_id_of(env)
    spec = env.spec
    canonical = canonical_env_id(env_id)
    registered = canonical in FIXED_HORIZON_VARIANTS and set(spec.kwargs) <= {"render_mode"} and (
        spec.max_episode_steps == gym.spec(canonical).max_episode_steps)  # the registered task, nothing changed
    if registered:  # gym.make("CartPole-v1") as well as the toolkit's id
        variant = FIXED_HORIZON_VARIANTS[canonical]
        horizon = gym.spec(variant).max_episode_steps
        return TrainingEnv(variant, "fixed-horizon variant", horizon, lambda: make_env(variant))
    if spec.max_episode_steps:
        horizon = int(spec.max_episode_steps)
        inner_spec = dataclasses.replace(spec, max_episode_steps=None)

        def make_absorbing() -> gym.Env:
            from seals.util import AbsorbAfterDoneWrapper

            return gym.wrappers.TimeLimit(AbsorbAfterDoneWrapper(gym.make(inner_spec)), max_episode_steps=horizon)

        return TrainingEnv(env_id, "absorbing state", horizon, make_absorbing)
    return TrainingEnv(env_id, "variable horizon", None, lambda: gym.make(spec))


# -- discriminator collapse ------------------------------------------------------------
class DiscriminatorCollapseDetector:
    """The user guide's "discriminator overfitting": accuracy ~100% round after round, so the
    generator's reward carries no signal. ``update(acc)`` returns a message the first time
    accuracy has been >= ``threshold`` for ``patience`` consecutive rounds (then stays quiet
    until accuracy drops below the threshold again)."""

    def __init__(self, threshold: float = 0.99, patience: int = 5, *, disc_updates: int | None = None,
                 disc_noise: float | None = None) -> None:
        self.threshold = threshold
        self.patience = patience
        self.disc_updates = disc_updates
        self.disc_noise = disc_noise
        self.streak = 0
        self.fired_rounds: list[int] = []

    def update(self, disc_acc: float, round_index: int) -> str | None:
        self.streak = self.streak + 1 if disc_acc >= self.threshold else 0
        if self.streak != self.patience:
            return None
        self.fired_rounds.append(round_index)
        noise = "" if self.disc_noise is None else f" (now {self.disc_noise:g})"
        updates = "" if self.disc_updates is None else f" (now {self.disc_updates})"
        suggested = 1 if not self.disc_updates else max(1, self.disc_updates // 2)
        return (
            f"discriminator collapse: accuracy >= {self.threshold:.0%} for {self.patience} consecutive rounds "
            f"(round {round_index}); the policy gets no useful reward and stops improving. Remedy (the user guide): "
            f"add noise to the discriminator input, --gail_disc_noise 0.05{noise}, and reduce "
            f"--gail_disc_updates to {suggested}{updates}"
        )


# -- the trainer -------------------------------------------------------------------------
class GAIL:
    """GAIL (the user guide): a discriminator tells expert from policy (state, action) pairs and PPO
    maximises ``gail_reward_scale * -log(1 - D(s, a))``.

    Args:
        env: the env (instance or id) the policy is for; evaluation runs here, training in its
            fixed-horizon version (:func:`training_env_for`).
        config: an :class:`ILConfig`; ``ILConfig.gail()`` by default.
        use_wandb: log to wandb (offline unless ``WANDB_MODE`` says otherwise); default ``config.use_wandb``.
        policy: the generator's starting policy: an :class:`SB3Policy` or SB3 actor-critic
            policy/model is copied (the generator then keeps its units, no task frame); a
            :class:`FrameSB3Policy` is copied in its frame; any other policy (BC's MLP on
            continuous actions, a flow policy) is distilled into a fresh (64, 64) MLP, in the
            env's task frame where ``task_frame`` is on (``self.distilled``: its figures, logged at
            step 0 and returned); None: a fresh (64, 64) MLP.
        progress: show progress bars.
    """

    def __init__(self, env: str | gym.Env, config: ILConfig | None = None, use_wandb: bool | None = None,
                 policy: Any = None, *, progress: bool = True, overwrite: bool = False) -> None:
        from stable_baselines3.common.env_util import make_vec_env

        from il_toolkit.train.online_rl.ppo_trainer import learner_env, learner_units, start_ppo, toolkit_policy

        self.env = common.resolve_env(env)
        self.env_id = common.env_id_of(self.env)
        self.config = common.own_config(config, ILConfig.gail, "gail")
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.progress = progress
        self.overwrite = overwrite
        self.rng = common.seed_everything(self.config.seed)
        self.training_env = training_env_for(self.env)
        if self.training_env.allow_variable_horizon:
            warnings.warn(
                f"{self.env_id} has no time limit, so GAIL cannot fix its horizon: training with imitation's "
                "allow_variable_horizon=True; episode ends leak reward information (register the env with "
                "max_episode_steps to get absorbing-state handling)"
            )
        n_envs = self.config.gail_n_envs
        # the generator sees the env's task frame (PushT) where it has one and task_frame is on (and it does not
        # start from a raw SB3 policy), else the raw observations; it acts in [-1, 1]: frame actions, or the env's
        # Box bounds mapped there (PushT's pixels)
        self.units = learner_units(self.env, policy, self.config.task_frame)
        self.started_from_policy = policy is not None  # the given policy is the warm start (the user guide's recipe)
        make, units = self.training_env.make, self.units
        self.venv = make_vec_env(lambda: learner_env(make(), units), n_envs=n_envs, seed=self.config.seed)
        self.gen_algo, self.distilled = start_ppo(
            self.venv, self.env, policy, units=self.units, learning_rate=self.config.learning_rate,
            n_steps=max(2, self.config.ppo_n_steps // n_envs), batch_size=self.config.batch_size,
            n_epochs=self.config.ppo_epochs, gamma=self.config.ppo_gamma, gae_lambda=self.config.ppo_gae_lambda,
            clip_range=self.config.ppo_clip_range, ent_coef=0.0, seed=self.config.seed, device=self.config.device,
            fix=f"--model_path must point at a policy trained on {self.env_id}", env_action_space=self.env.action_space,
            progress=self.progress,
        )
        self.policy = toolkit_policy(self.gen_algo.policy, self.env, self.units)

    @property
    def round_timesteps(self) -> int:
        """Environment steps per GAIL round (one PPO rollout across all envs)."""
        return self.gen_algo.n_steps * self.venv.num_envs

    # -- demonstrations ----------------------------------------------------------------
    def demonstrations(self, expert_policy: Any = None, dataset: str | None = None,
                       num_expert_episodes: int | None = None, *, expert_name: str | None = None) -> list:
        """Expert trajectories from ``dataset`` (a Minari id) or rolled out in the training env
        by ``expert_policy`` (function, Policy, SB3 model; the env's registered expert if None)."""
        if dataset is not None:
            from il_toolkit.train.datasets.minari_io import load_demonstrations

            trajectories = load_demonstrations(dataset, env=self.env)
            if num_expert_episodes is not None:
                trajectories = trajectories[:num_expert_episodes]
        else:
            collect_env = self.training_env.make()
            expert = self._expert(expert_policy, collect_env, expert_name)
            check_spaces("expert", expert.observation_space, expert.action_space,
                         self.env.observation_space, self.env.action_space, fix="use an expert written for this env")
            n = num_expert_episodes or self.config.num_expert_episodes
            trajectories = generate_trajectories(expert, collect_env, common.demonstration_seeds(self.config, n),
                                                 progress=self.progress, desc="expert demonstrations")
        return common.filter_demonstrations(trajectories, self.config)

    def _expert(self, expert_policy: Any, collect_env: gym.Env, expert_name: str | None = None) -> Policy:
        if expert_policy is None:
            from il_toolkit.experts import make_expert

            # experts that read the simulator (PushT, ALOHA) must get the env being stepped
            return make_expert(self.env_id, env=collect_env, name=expert_name)
        return as_policy(expert_policy, self.env.observation_space, self.env.action_space)

    # -- training ----------------------------------------------------------------------
    def train(
        self,
        expert_policy: Any = None,
        num_expert_episodes: int | None = None,
        total_timesteps: int | None = None,
        dataset: str | None = None,
        *,
        trajectories: Sequence[Any] | None = None,
        evaluate_policy: bool = True,
        eval_every_rounds: int = 0,
        eval_episodes_during_training: int = 10,
        target_return: float | None = None,
        stop_at_target: bool = False,
        expert_name: str | None = None,
    ) -> dict[str, Any]:
        """Adversarial training for ``total_timesteps`` env steps (default ``config.total_timesteps``).

        ``eval_every_rounds`` > 0 evaluates the deterministic policy in the user's env every so
        many rounds (``eval_episodes_during_training`` episodes, seeds from 2,000,000); the best
        of those is saved as ``best/``. ``results["reached"]`` records the first evaluation with a
        mean return >= ``target_return`` (round, timesteps, wall-clock with and without the
        evaluations' own time); ``stop_at_target`` ends training there. ``expert_name`` picks a
        registered expert other than the env's default. Returns paths, per-round figures, timings and the final evaluation.
        """
        from il_toolkit.train.datasets.minari_io import to_transitions

        start = time.perf_counter()
        self.config.validate()
        common.claim_output_dir(self.config.output_dir, "gail", self.overwrite)
        if isinstance(expert_policy, str):
            dataset, expert_policy = expert_policy, None
        demos = list(trajectories) if trajectories is not None else self.demonstrations(
            expert_policy, dataset, num_expert_episodes, expert_name=expert_name)
        steps = total_timesteps or self.config.total_timesteps
        n_rounds = steps // self.round_timesteps
        if n_rounds < 1:
            raise ValueError(
                f"total_timesteps {steps} is less than one GAIL round ({self.round_timesteps} steps = ppo_n_steps "
                f"split over {self.venv.num_envs} envs): raise --total_timesteps or lower --ppo_n_steps"
            )
        if n_rounds * self.round_timesteps != steps:
            warnings.warn(
                f"GAIL trains in whole rounds of {self.round_timesteps} env steps (ppo_n_steps over {self.venv.num_envs} "
                f"envs): {steps} requested, {n_rounds * self.round_timesteps} trained ({n_rounds} rounds); ask for "
                f"{(n_rounds + 1) * self.round_timesteps} for one more round", stacklevel=2)
        output_dir = Path(self.config.output_dir)
        lengths = sorted({len(t) for t in demos})
        common.write_run_files(output_dir, self.config, {
            "algorithm": "gail", "env_id": self.env_id, "training_env_id": self.training_env.env_id,
            "horizon_handling": self.training_env.handling, "horizon": self.training_env.horizon,
            "dataset": dataset, "n_demo_episodes": len(demos), "demo_episode_lengths": lengths,
            "n_rounds": n_rounds, "round_timesteps": self.round_timesteps, "n_envs": self.venv.num_envs,
        })
        logger = MetricLogger(output_dir, use_wandb=self.use_wandb, project=self.config.wandb_project,
                              run_name=f"gail-{self.env_id}-s{self.config.seed}", config=self.config.to_dict(),
                              console=self.progress)
        try:
            history = self._fit(self._in_generator_units(to_transitions(demos)), n_rounds, logger, start, eval_every_rounds,
                                eval_episodes_during_training, target_return, stop_at_target)
        except KeyboardInterrupt:
            self.gen_algo.policy.set_training_mode(False)
            common.save_interrupted(self.policy, output_dir)
            raise
        finally:
            logger.close()
        train_seconds = time.perf_counter() - start
        self.gen_algo.policy.set_training_mode(False)
        common.mark_trained_in(self.policy, self.env)
        self.policy.save(output_dir / "last")
        if history["best_state"] is not None:
            self.gen_algo.policy.load_state_dict(history.pop("best_state"))
        history.pop("best_state", None)
        best_path = self.policy.save(output_dir / "best")
        results: dict[str, Any] = {
            "policy_path": str(best_path), "last_policy_path": str(output_dir / "last"),
            "training_env_id": self.training_env.env_id, "horizon_handling": self.training_env.handling,
            "n_demo_episodes": len(demos), "train_seconds": train_seconds, "distilled": self.distilled, **history,
        }
        if evaluate_policy:
            results["eval"] = evaluate_and_report(self.policy, self.env, self.config.eval_episodes,
                                                  output_dir / "eval.json", progress=self.progress)
        return results

    def _in_generator_units(self, transitions: Any) -> Any:
        """Demonstrations as the generator sees them (the task frame's features and actions, or
        actions in [-1, 1] for Box actions with other bounds), so that the discriminator and the
        BC warm start compare like with like."""
        return in_learner_units(transitions, self.policy)

    def _fit(self, transitions: Any, n_rounds: int, logger: MetricLogger, start: float, eval_every: int,
             eval_episodes: int, target: float | None, stop_at_target: bool) -> dict[str, Any]:
        from imitation.util import networks

        from il_toolkit.train.il import gail_adapter

        config = self.config
        if self.distilled is not None:
            logger.log(self.distilled, step=0)
        if config.gail_bc_warm_start_epochs > 0 and self.started_from_policy:
            logger.log({"bc_warm_start/epochs": 0, "bc_warm_start/skipped_for_the_given_policy": 1}, step=0)
        elif config.gail_bc_warm_start_epochs > 0:
            t0 = time.perf_counter()
            bc_warm_start(self.gen_algo.policy, transitions, epochs=config.gail_bc_warm_start_epochs,
                                       batch_size=config.batch_size, learning_rate=config.learning_rate,
                                       rng=self.rng, device=config.device)
            logger.log({"bc_warm_start/epochs": config.gail_bc_warm_start_epochs,
                        "bc_warm_start/seconds": time.perf_counter() - t0}, step=0)
        capture = gail_adapter.RecordCapture()
        trainer, meter = gail_adapter.make_gail(
            demonstrations=transitions, venv=self.venv, gen_algo=self.gen_algo, hidden_dim=config.gail_disc_hidden_dim,
            disc_updates=config.gail_disc_updates, disc_lr=config.gail_disc_lr, disc_noise=config.gail_disc_noise,
            demo_batch_size=config.gail_demo_batch_size, reward_scale=config.gail_reward_scale,
            allow_variable_horizon=self.training_env.allow_variable_horizon, capture=capture,
        )
        detector = DiscriminatorCollapseDetector(disc_updates=config.gail_disc_updates, disc_noise=config.gail_disc_noise)
        state: dict[str, Any] = {"rounds": 0, "best_eval_return": None, "best_round": None, "best_state": None,
                                 "reached": None, "collapse_warnings": [], "eval_history": [], "eval_seconds": 0.0}
        try:
            if eval_every > 0 and (config.gail_bc_warm_start_epochs > 0 or self.started_from_policy):  # round 0: the start
                metrics0: dict[str, Any] = {"round": 0, "timesteps": 0}
                self._evaluate_round(metrics0, state, 0, eval_episodes, start, target)
                logger.log(metrics0, step=0)
            bar = tqdm(range(1, n_rounds + 1), desc="GAIL", unit="round", disable=not self.progress, dynamic_ncols=True)
            for r in bar:
                if stop_at_target and state["reached"] is not None:
                    break
                trainer.train_gen(self.round_timesteps)
                with networks.training(trainer.reward_train):
                    stats = [trainer.train_disc() for _ in range(trainer.n_disc_updates_per_round)]
                metrics: dict[str, Any] = {
                    "round": r,
                    "timesteps": int(self.gen_algo.num_timesteps),
                    "disc_loss": float(np.mean([s["disc_loss"] for s in stats])),
                    "disc_acc": float(np.mean([s["disc_acc"] for s in stats])),
                    "disc_acc_expert": float(np.mean([s["disc_acc_expert"] for s in stats])),
                    "disc_acc_gen": float(np.mean([s["disc_acc_gen"] for s in stats])),
                    "mean_reward": meter.pop_mean(),
                }
                metrics.update({k: v for k, v in capture.pop().items()
                                if k.startswith(("gen/rollout/", "gen/train/", "disc/")) and k != "disc/global_step"})
                if "gen/train/loss" in metrics:  # the user guide's metrics table: GAIL's train/loss is the PPO loss
                    metrics["train/loss"] = metrics["gen/train/loss"]
                message = detector.update(metrics["disc_acc"], r)
                if message is not None:
                    warnings.warn(message)
                    metrics["disc_collapse"] = 1
                    metrics["warning"] = message
                    state["collapse_warnings"].append(message)
                if eval_every > 0 and (r % eval_every == 0 or r == n_rounds):
                    self._evaluate_round(metrics, state, r, eval_episodes, start, target)
                metrics["wall_s"] = time.perf_counter() - start
                logger.log(metrics, step=metrics["timesteps"], console_keys=GAIL_CONSOLE)
                bar.set_postfix(steps=metrics["timesteps"], disc_acc=f"{metrics['disc_acc']:.2f}",
                                reward=f"{metrics['mean_reward']:.3g}")
                state["rounds"] = r
                state["last_disc_acc"], state["last_mean_reward"] = metrics["disc_acc"], metrics["mean_reward"]
        finally:
            if "bar" in locals():
                bar.close()
            capture.close()
        state["total_timesteps"] = int(self.gen_algo.num_timesteps)
        state["disc_collapse_rounds"] = list(detector.fired_rounds)
        return state

    def _evaluate_round(self, metrics: dict[str, Any], state: dict[str, Any], r: int, n_episodes: int,
                        start: float, target: float | None) -> None:
        self.gen_algo.policy.set_training_mode(False)
        t0 = time.perf_counter()
        result = evaluate(self.policy, self.env, n_episodes=n_episodes, seed=IN_TRAINING_EVAL_SEED)
        state["eval_seconds"] += time.perf_counter() - t0
        metrics["eval/mean_return"] = result.mean_return
        metrics["eval/pc_success"] = result.pc_success
        if state["best_eval_return"] is None or result.mean_return > state["best_eval_return"]:
            state.update(best_eval_return=result.mean_return, best_round=r,
                         best_state=copy.deepcopy(self.gen_algo.policy.state_dict()))
        if state["reached"] is None and target is not None and result.mean_return >= target:
            wall = time.perf_counter() - start
            state["reached"] = {"round": r, "timesteps": metrics["timesteps"], "eval_mean_return": result.mean_return,
                                "wall_s": wall, "wall_s_without_evaluation": wall - state["eval_seconds"]}
        state["eval_history"].append({"round": r, "timesteps": metrics["timesteps"], "mean_return": result.mean_return,
                                      "pc_success": result.pc_success,
                                      "avg_max_reward": result.aggregates["avg_max_reward"]})

if __name__ == "__main__":  # python -m il_toolkit.train.il.gail: the command line
    from il_toolkit.train.il.cli import main_gail

    raise SystemExit(main_gail(prog="python -m il_toolkit.train.il.gail"))
