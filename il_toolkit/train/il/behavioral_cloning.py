"""Behavioural cloning as the user guide describes it, built on imitation's BC.

Python::

    from il_toolkit import BehavioralCloning, ILConfig
    trainer = BehavioralCloning(env=gym.make("CartPole-v1"), config=ILConfig.behavioral_cloning(), use_wandb=True)
    results = trainer.train(expert_policy=expert_policy)      # or dataset="cartpole/lqr-v0"

Command line::

    python -m il_toolkit.train.il.behavioral_cloning --env CartPole-v1 --bc_epochs 100 \
        --batch_size 64 --learning_rate 1e-4 --output_dir ./output/bc

A run writes, under ``output_dir``: ``config.json`` (the ILConfig), ``run.json``,
``metrics.jsonl`` (``train/loss``, ``val/loss`` ... per epoch), ``best/`` (the policy with
the lowest validation loss, the one evaluated), ``last/`` and ``eval.json``.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from il_toolkit.config.training_config import ConfigError, ILConfig
from il_toolkit.evaluation import evaluate_and_report
from il_toolkit.policies import SB3Policy, as_policy, check_spaces
from il_toolkit.policies.frame_policy import FrameSB3Policy, in_learner_units
from il_toolkit.policies.base import Policy
from il_toolkit.rollout import generate_trajectories
from il_toolkit.train.il import common
from il_toolkit.train.il.vla import VLABehavioralCloning  # noqa: F401  (the user guide imports it from here)
from il_toolkit.train.sb3_glue import silent_imitation_logger
from il_toolkit.train.logging import MetricLogger

SB3_NET_ARCH = [64, 64]
MLP_HIDDEN_SIZES = [256, 256]


def make_policy(env: gym.Env, config: ILConfig) -> Any:
    """The policy BC trains when none is given (``config.policy_type``): an SB3 actor-critic
    trained by imitation's BC ("sb3", the default for discrete actions) or the toolkit's
    normalising :class:`MLPPolicy` ("mlp", the default for continuous actions; with
    ``relative_actions`` it regresses offsets from the env's ``action_reference`` entries; with
    ``drop_velocity_obs`` it does not see the env's ``velocity_obs`` entries; with ``task_frame``
    it works in the env's ``policy_frame``)."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    from il_toolkit.policies.mlp import MLPPolicy

    kind = config.policy_type
    if kind == "auto":
        kind = "sb3" if isinstance(env.action_space, gym.spaces.Discrete) else "mlp"
    if kind == "sb3":
        if config.lr_schedule != "constant" or config.policy_activation != "relu" or config.policy_mixture_components != 1:
            raise ConfigError("lr_schedule, policy_activation and policy_mixture_components apply to the toolkit's MLP "
                              "policy; imitation's BC trains SB3 policies at a constant learning rate: set "
                              "policy_type='mlp' (--policy_type mlp) or drop them")
        return SB3Policy(ActorCriticPolicy(
            env.observation_space, env.action_space, lr_schedule=lambda _: config.learning_rate,
            net_arch=list(config.policy_hidden_sizes or SB3_NET_ARCH),
        ))
    frame = getattr(env.unwrapped, "policy_frame", None) if config.task_frame else None
    reference = getattr(env.unwrapped, "action_reference", None) if config.relative_actions and frame is None else None
    ignored = getattr(env.unwrapped, "velocity_obs", ()) if config.drop_velocity_obs else ()
    return MLPPolicy(env.observation_space, env.action_space, hidden_sizes=config.policy_hidden_sizes or MLP_HIDDEN_SIZES,
                     activation=config.policy_activation, action_reference=reference, ignored_obs=ignored, frame=frame,
                     mixture_components=config.policy_mixture_components)


def _as_trainable(policy: Any) -> Any:
    if isinstance(policy, (SB3Policy, FrameSB3Policy)) or hasattr(policy, "compute_loss"):
        return policy
    from stable_baselines3.common.policies import BasePolicy as SB3BasePolicy

    if isinstance(policy, SB3BasePolicy):
        return SB3Policy(policy)
    raise TypeError(
        f"{type(policy).__name__} cannot be trained by BC: pass an SB3 actor-critic policy (or a GAIL/PPO result) "
        "or a toolkit policy with compute_loss (MLPPolicy, the flow-matching policies)"
    )


class BehavioralCloning:
    """Supervised learning of a policy from expert demonstrations (the user guide).

    Args:
        env: the environment (instance or id) the policy acts in.
        config: an :class:`ILConfig`; ``ILConfig.behavioral_cloning()`` by default.
        use_wandb: log to wandb (offline unless ``WANDB_MODE`` says otherwise); defaults to
            ``config.use_wandb``.
        policy: a policy to start from: an :class:`SB3Policy` or SB3/imitation policy
            (trained with imitation's BC), a toolkit policy with ``compute_loss`` (trained
            with the toolkit's loop), or ``None`` for :func:`make_policy`.
        progress: show progress bars.
        overwrite: replace an earlier run in ``config.output_dir`` (otherwise refused).
    """

    def __init__(
        self,
        env: str | gym.Env,
        config: ILConfig | None = None,
        use_wandb: bool | None = None,
        *,
        policy: Any = None,
        progress: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.env = common.resolve_env(env)
        self.overwrite = overwrite
        self.config = common.own_config(config, ILConfig.behavioral_cloning, "bc")
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.progress = progress
        self.rng = common.seed_everything(self.config.seed)
        self._policy_given = policy is not None
        if policy is None:
            self.policy = None if self.config.trains_flow else make_policy(self.env, self.config)
            self._normalizer_fitted = False
        else:
            if self.config.trains_flow:
                raise ValueError("policy_type='flow' and action_chunk_size > 1 train a new flow-matching policy; it "
                                 "cannot continue from --model_path / policy=: drop one of the two")
            self.policy = _as_trainable(policy)
            self._normalizer_fitted = True
            check_spaces(
                "starting policy", self.policy.observation_space, self.policy.action_space,
                self.env.observation_space, self.env.action_space,
                fix=f"--model_path must point at a policy trained on {common.env_id_of(self.env)}",
            )

    @property
    def module(self) -> torch.nn.Module:
        """The torch module holding the policy's trainable state."""
        sb3 = self._sb3_policy()
        return sb3.policy if sb3 is not None else self.policy.model

    def _sb3_policy(self) -> SB3Policy | None:
        """The SB3 policy imitation's BC trains: the policy itself, or a task-frame policy's
        inner one (GAIL or PPO in PushT's frame); None for toolkit policies."""
        if isinstance(self.policy, FrameSB3Policy):
            return self.policy.inner
        return self.policy if isinstance(self.policy, SB3Policy) else None

    def reinitialize(self, seed: int) -> None:
        """Fresh weights for the policy (DAgger's per-round retraining): a policy BC built is built
        again from the config; a given one (``--model_path``) has its layers' parameters reset.
        The normaliser is refit at the next :meth:`fit`."""
        torch.manual_seed(seed)
        if self._policy_given:
            for layer in self.module.modules():
                if layer is not self.module and hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        else:
            self.policy = make_policy(self.env, self.config)
        self._normalizer_fitted = False

    # -- demonstrations ----------------------------------------------------------------
    def demonstrations(
        self,
        expert_policy: Any = None,
        dataset: str | None = None,
        num_expert_episodes: int | None = None,
    ) -> list:
        """Expert trajectories: from ``dataset`` (a Minari id) or by rolling out
        ``expert_policy`` (a Policy, SB3 model or function; the env's registered expert if None)."""
        if dataset is not None:
            from il_toolkit.train.datasets.minari_io import load_demonstrations

            trajectories = load_demonstrations(dataset, env=self.env)
            if num_expert_episodes is not None:
                trajectories = trajectories[:num_expert_episodes]
        else:
            expert = self._expert(expert_policy)
            check_spaces(
                "expert", expert.observation_space, expert.action_space,
                self.env.observation_space, self.env.action_space,
                fix="use an expert written for this env",
            )
            n = num_expert_episodes or self.config.num_expert_episodes
            trajectories = generate_trajectories(
                expert, self.env, common.demonstration_seeds(self.config, n),
                progress=self.progress, desc="expert demonstrations",
            )
        return common.filter_demonstrations(trajectories, self.config)

    def _expert(self, expert_policy: Any) -> Policy:
        if expert_policy is None:
            from il_toolkit.experts import make_expert

            return make_expert(common.env_id_of(self.env), env=self.env)
        return as_policy(expert_policy, self.env.observation_space, self.env.action_space)

    # -- training ----------------------------------------------------------------------
    def train(
        self,
        expert_policy: Any = None,
        *,
        dataset: str | None = None,
        num_expert_episodes: int | None = None,
        trajectories: Sequence[Any] | None = None,
        evaluate_policy: bool = True,
    ) -> dict[str, Any]:
        """Train on demonstrations, keep the best policy by validation loss, save and evaluate.

        Returns a dict with the checkpoint paths, losses, timings and the evaluation aggregates.
        """
        start = time.perf_counter()
        self.config.validate()
        common.claim_output_dir(self.config.output_dir, "bc", self.overwrite)
        demos = list(trajectories) if trajectories is not None else self.demonstrations(expert_policy, dataset, num_expert_episodes)
        train_demos, val_demos = common.split_episodes(demos, self.config.bc_validation_split, self.rng)
        output_dir = Path(self.config.output_dir)
        common.write_run_files(output_dir, self.config, {
            "algorithm": "bc",
            "env_id": common.env_id_of(self.env),
            "policy": "FlowMatchingPolicy" if self.config.trains_flow else type(self.policy).__name__,
            "dataset": dataset,
            "n_demo_episodes": len(demos),
            "n_train_episodes": len(train_demos),
            "n_val_episodes": len(val_demos),
        })
        logger = MetricLogger(
            output_dir, use_wandb=self.use_wandb, project=self.config.wandb_project,
            run_name=f"bc-{common.env_id_of(self.env)}-s{self.config.seed}", config=self.config.to_dict(),
            console=self.progress,
        )
        try:
            if self.config.trains_flow:
                history = self.fit_chunked(train_demos, logger, val_demos=val_demos)
            else:
                history = self.fit(train_demos, val_demos, logger)
        except KeyboardInterrupt:
            self._save_interrupted(output_dir)
            raise
        finally:
            logger.close()
        train_seconds = time.perf_counter() - start
        results: dict[str, Any] = {
            **self.save(output_dir, history["last_state"]),
            "n_demo_episodes": len(demos),
            "n_train_transitions": history["n_train"],
            "n_val_transitions": history["n_val"],
            "best_epoch": history["best_epoch"],
            "best_val_loss": history["best_val_loss"],
            "best_selected_by": history["selected_by"],
            "final_train_loss": history["final_train_loss"],
            "train_seconds": train_seconds,
        }
        if evaluate_policy:
            results["eval"] = self.evaluate(output_dir / "eval.json")
        return results

    def _save_interrupted(self, output_dir: Path) -> None:
        """Ctrl-C during a fit: keep the weights reached so far as ``interrupted/`` (a policy like any
        other: evaluate it, or continue from it with ``--model_path``) and say where."""
        if self.policy is None or not (self._normalizer_fitted or self._sb3_policy() is not None):
            print("interrupted before any weights were fitted: nothing to save", file=sys.stderr)
            return
        common.save_interrupted(self.policy, output_dir)

    def train_epoch(self, expert_policy: Any = None, *, dataset: str | None = None) -> dict[str, Any]:
        """One more epoch of BC (the user guide's warm-start loop: ``for _ in range(n): bc.train_epoch()``).

        The first call gathers the demonstrations (``expert_policy``, ``dataset``, or the env's
        expert) and keeps them; metrics go to ``output_dir/metrics.jsonl`` (not wandb: a run per
        epoch would be noise). Each call is a fit of one epoch with its own optimiser (its moment
        estimates start afresh); ``train`` keeps one optimiser across its epochs. Returns the
        epoch's history (``train/loss``, ``val/loss`` ...).
        """
        if not hasattr(self, "_epoch_data"):
            demos = self.demonstrations(expert_policy, dataset)
            self._epoch_data = common.split_episodes(demos, self.config.bc_validation_split, self.rng)
            self._epochs_done = 0
        logger = MetricLogger(self.config.output_dir, use_wandb=False, console=self.progress)
        try:
            history = self.fit(*self._epoch_data, logger, epochs=1, step_offset=self._epochs_done)
        finally:
            logger.close()
        self._epochs_done += 1
        return history

    def save(self, output_dir: Path, last_state: dict[str, torch.Tensor]) -> dict[str, str]:
        """Save ``last/`` from ``last_state`` and ``best/`` from the current (best) weights."""
        best_state = {k: v.clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(last_state)
        common.mark_trained_in(self.policy, self.env)
        self.policy.save(output_dir / "last")
        self.module.load_state_dict(best_state)
        return {"policy_path": str(self.policy.save(output_dir / "best")), "last_policy_path": str(output_dir / "last")}

    def evaluate(self, path: Path | None = None) -> dict[str, float]:
        """Evaluate the current policy on ``eval_episodes`` seeds; optionally write ``path``."""
        return evaluate_and_report(self.policy, self.env, self.config.eval_episodes, path, progress=self.progress)

    # -- the learner contract (what DAgger asks of BC: adopt a policy, reinitialize, fit) ----------
    @property
    def fitted(self) -> bool:
        """The policy has been fitted (or was given trained): its normaliser holds statistics."""
        return self._normalizer_fitted

    def adopt(self, policy: Any) -> None:
        """Continue from ``policy``, already trained (its normaliser fitted): a resumed DAgger round's."""
        self.policy = policy
        self._normalizer_fitted = True

    def fit(
        self,
        train_demos: Sequence[Any],
        val_demos: Sequence[Any],
        logger: MetricLogger,
        *,
        epochs: int | None = None,
        step_offset: int = 0,
        keep: str | None = None,
        refit_normalizer: bool = False,
    ) -> dict[str, Any]:
        """Train the policy on ``train_demos`` for ``epochs`` (default ``bc_epochs``), logging
        ``train/loss`` and ``val/loss`` per epoch at step ``step_offset + epoch``. ``keep``: "best"
        (lowest validation loss; training loss without ``val_demos``) or "last"; default: the
        config's rule for BC (:meth:`ILConfig.kept_weights`). ``refit_normalizer``: fit the
        normaliser on these demonstrations even if an earlier fit did (a DAgger round's aggregate).
        Returns the history with ``last_state``, the weights of the last epoch."""
        from il_toolkit.train.datasets.minari_io import to_transitions

        epochs = epochs or self.config.bc_epochs
        keep = keep or self.config.kept_weights("bc")
        if refit_normalizer:
            self._normalizer_fitted = False
        train = to_transitions(train_demos)
        val = to_transitions(val_demos) if val_demos else None
        if self._sb3_policy() is not None:
            history = self._fit_imitation(train, val, logger, epochs, step_offset)
            history["last_state"] = {k: v.clone() for k, v in self.module.state_dict().items()}
            if keep == "best":
                self.module.load_state_dict(history["best_state"])
        else:
            history = self._fit_toolkit(train, val, logger, epochs, step_offset, keep)
        if val is None:  # the best epoch was chosen on training loss; there is no validation loss to report
            history["best_val_loss"] = None
        history["selected_by"] = ("train/loss" if val is None else "val/loss") if keep == "best" else "last epoch"
        return {**history, "n_train": len(train), "n_val": 0 if val is None else len(val)}

    def fit_chunked(self, train_demos: Sequence[Any], logger: MetricLogger, *, val_demos: Sequence[Any] = (),
                    step_offset: int = 0, seed: int | None = None, keep: str | None = None,
                    start: Any = None) -> dict[str, Any]:
        """Train a flow-matching policy (``policy_type="flow"``, or ACT-style chunking with
        ``action_chunk_size > 1``) that predicts ``action_chunk_size`` actions per observation, for
        ``bc_epochs`` passes' worth of gradient steps; from ``start``'s weights, features and
        normaliser where given (a flow policy this method trained), else from scratch. With ``temporal_aggregation`` it
        re-plans every step and averages overlapping chunks (ACT's temporal ensembling, k=0.01);
        without, it executes each chunk in full. Each epoch logs ``train/loss`` (and ``val/loss`` on
        ``val_demos``) at ``step_offset + epoch``; ``keep`` as in :meth:`fit` (default: the config's
        rule for a flow learner); ``seed`` (default: the config's) seeds the fit."""
        from il_toolkit.policies.flow_policy import default_state_features
        from il_toolkit.train.datasets.minari_io import chunk_start_mask
        from il_toolkit.train.imitation_learning.loop import fit_flow_policy

        if not isinstance(self.env.action_space, gym.spaces.Box):
            raise ValueError(f"a flow-matching learner needs continuous actions; {common.env_id_of(self.env)} has "
                             f"{self.env.action_space}: set action_chunk_size=1 and policy_type mlp or sb3")
        chunk = self.config.action_chunk_size
        keep = keep or self.config.kept_weights("flow")
        n = sum(int(chunk_start_mask(t).sum()) for t in train_demos)  # windows: an epoch is a pass over them

        def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            logger.log({**metrics, "epoch": step_offset + epoch}, step=step_offset + epoch)

        new_model = {} if start is not None else dict(
            spec_fields={"horizon": chunk, "n_obs_steps": 1},
            features=default_state_features(self.env) if self.config.task_frame else None,
            policy_options={"n_action_steps": 1, "temporal_ensemble_coeff": 0.01} if self.config.temporal_aggregation
            else {"n_action_steps": self.config.executed_per_chunk})
        self.policy, fit = fit_flow_policy(
            "naive_flow_matching_policy_trainer", train_demos, self.env.observation_space, self.env.action_space,
            steps=self.config.bc_epochs * max(1, n // self.config.batch_size), batch_size=self.config.batch_size,
            learning_rate=self.config.learning_rate, seed=self.config.seed if seed is None else seed,
            policy=start, val_trajectories=list(val_demos) or None, keep=keep, on_epoch_end=on_epoch_end, **new_model,
        )
        selected_by = ("val/loss" if val_demos else "train/loss") if keep == "best" else "last epoch"
        return {"best_epoch": fit.best_epoch, "best_val_loss": fit.best_val_loss if val_demos else None,
                "final_train_loss": fit.final_train_loss, "selected_by": selected_by, "last_state": fit.last_state,
                "n_train": n, "n_val": sum(int(chunk_start_mask(t).sum()) for t in val_demos)}

    def _fit_toolkit(self, train: Any, val: Any, logger: MetricLogger, epochs: int, step_offset: int,
                     keep: str) -> dict[str, Any]:
        from imitation.data.types import maybe_unwrap_dictobs

        from il_toolkit.train.supervised import fit

        def arrays(transitions: Any) -> tuple[Any, np.ndarray]:
            return maybe_unwrap_dictobs(transitions.obs), np.asarray(transitions.acts)

        train_arrays = arrays(train)
        if not self._normalizer_fitted and hasattr(self.policy, "fit_normalizer"):
            self.policy.fit_normalizer(*train_arrays)
            self._normalizer_fitted = True

        def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            logger.log({**metrics, "epoch": step_offset + epoch}, step=step_offset + epoch)

        history = fit(
            self.policy, train_arrays, arrays(val) if val is not None else None,
            epochs=epochs, batch_size=self.config.batch_size, learning_rate=self.config.learning_rate,
            weight_decay=self.config.weight_decay, rng=self.rng, on_epoch_end=on_epoch_end,
            progress=self.progress, desc="bc", lr_schedule=self.config.lr_schedule, keep=keep,
        )
        return {"best_epoch": history.best_epoch, "best_val_loss": history.best_val_loss,
                "final_train_loss": history.final_train_loss, "last_state": history.last_state}

    def _fit_imitation(self, train: Any, val: Any, logger: MetricLogger, epochs: int, step_offset: int) -> dict[str, Any]:
        from imitation.algorithms import bc

        if len(train) < self.config.batch_size:
            raise ValueError(
                f"{len(train)} training transitions is fewer than batch_size {self.config.batch_size}: "
                "collect more demonstrations or lower --batch_size"
            )
        sb3 = self._sb3_policy()
        # a GAIL or PPO result sees the task frame or acts in [-1, 1]: demonstrations in its units
        train, val = (None if t is None else in_learner_units(t, self.policy) for t in (train, val))
        with silent_imitation_logger() as imitation_log:
            trainer = bc.BC(
                observation_space=sb3.policy.observation_space,
                action_space=sb3.policy.action_space,
                rng=self.rng,
                policy=sb3.policy,
                demonstrations=train,
                batch_size=self.config.batch_size,
                optimizer_cls=_adamw_with_weight_decay(self.config.weight_decay),
                optimizer_kwargs={"lr": self.config.learning_rate},
                device=self.config.device,
                custom_logger=imitation_log,
            )
            state: dict[str, Any] = {
                "epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0,
                "best_state": copy.deepcopy(self.module.state_dict()), "final_train_loss": float("nan"),
            }

            def on_epoch_end() -> None:
                state["epoch"] += 1
                metrics = {"train/loss": _bc_loss(trainer, train)}
                state["final_train_loss"] = metrics["train/loss"]
                if val is not None:
                    metrics["val/loss"] = _bc_loss(trainer, val)
                    if isinstance(self.env.action_space, gym.spaces.Discrete):
                        metrics["val/accuracy"] = _accuracy(self.policy, val)
                monitored = metrics.get("val/loss", metrics["train/loss"])
                if monitored < state["best_val_loss"]:
                    state.update(best_val_loss=monitored, best_epoch=state["epoch"],
                                 best_state=copy.deepcopy(self.module.state_dict()))
                step = step_offset + state["epoch"]
                logger.log({**metrics, "epoch": step}, step=step)

            with warnings.catch_warnings():
                # imitation's BC logs float(loss) on tensors that require grad; harmless, and noisy
                warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
                trainer.train(n_epochs=epochs, on_epoch_end=on_epoch_end, progress_bar=self.progress, log_interval=10**9)
            sb3.policy.set_training_mode(False)
            return state


def _adamw_with_weight_decay(weight_decay: float) -> type[torch.optim.AdamW]:
    """AdamW with decoupled weight decay fixed in. imitation's BC refuses a ``weight_decay``
    optimizer kwarg (it offers an L2 loss term instead); the user guide's ``weight_decay`` is the
    usual decoupled decay, so it is bound into the optimizer class."""

    class AdamWWithDecay(torch.optim.AdamW):
        def __init__(self, params: Any, **kwargs: Any) -> None:
            super().__init__(params, weight_decay=weight_decay, **kwargs)

    return AdamWWithDecay


def _bc_loss(trainer: Any, transitions: Any) -> float:
    """imitation's BC loss (negative log-likelihood + entropy and L2 terms) on ``transitions``."""
    from imitation.data import types
    from imitation.util import util

    policy = trainer.policy
    was_training = policy.training
    policy.set_training_mode(False)
    with torch.no_grad():
        obs = types.map_maybe_dict(
            lambda x: util.safe_to_tensor(x, device=policy.device), types.maybe_unwrap_dictobs(transitions.obs)
        )
        acts = util.safe_to_tensor(transitions.acts, device=policy.device)
        loss = float(trainer.loss_calculator(policy, obs, acts).loss)
    policy.set_training_mode(was_training)
    return loss


def _accuracy(policy: SB3Policy, transitions: Any) -> float:
    actions, _ = policy.predict(transitions.obs, deterministic=True)
    return float(np.mean(np.asarray(actions).reshape(-1) == np.asarray(transitions.acts).reshape(-1)))

if __name__ == "__main__":  # python -m il_toolkit.train.il.behavioral_cloning: the command line
    from il_toolkit.train.il.cli import main_bc

    raise SystemExit(main_bc(prog="python -m il_toolkit.train.il.behavioral_cloning"))
