"""VLA behavioural cloning and GAIL with the user guide's signatures, on the shared BC code (VLA DAgger is
:class:`il_toolkit.train.il.dagger.VLADAgger`, the command lines' VLA routing :mod:`il_toolkit.train.il.cli`).

Python::

    from il_toolkit.model.vla import VLAModel
    from il_toolkit.train.datasets.lerobot_dataset import PushTDataset, create_lerobot_dataloader
    from il_toolkit.train.il.vla import VLABehavioralCloning

    model = VLAModel(vision_model_name="builtin-small", llm_model_name="builtin-small", action_dim=2, state_dim=2)
    dataloader = create_lerobot_dataloader(PushTDataset(split="train", chunk_size=10), batch_size=32)
    trainer = VLABehavioralCloning(model=model, config=ILConfig.behavioral_cloning(), use_wandb=True, dataset_name="pusht")
    results = trainer.train(dataloader)                      # output_dir/best, last, metrics.jsonl

    from il_toolkit.train.il.dagger import VLADAgger
    VLADAgger(env="il_toolkit/PushT-v0", model="./output/vla_bc/best", config=ILConfig.dagger(),
              env_kwargs={"obs_type": "pixels_agent_pos"}).train()   # --model_path chaining

Training goes through :func:`il_toolkit.train.supervised.fit_loader` (the shared supervised
loop, for batches that do not fit in arrays); DAgger is :class:`il_toolkit.train.il.dagger.DAgger`
with this BC in place of the array BC, so rounds, beta schedules, the aggregate Minari dataset
and resuming are the same code. Each aggregated episode becomes chunked samples whose targets
are the expert's labels along the visited trajectory (the last steps padded, as in the dataset).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from il_toolkit.config.training_config import ILConfig
from il_toolkit.model.spec import ENV_STATE_KEY, STATE_KEY
from il_toolkit.model.vla import VLAModel
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, create_lerobot_dataloader, flatten_observation
from il_toolkit.train.datasets.multitask import dataset_statistics as episode_statistics
from il_toolkit.train.il import common
from il_toolkit.train.logging import MetricLogger
from il_toolkit.train.loop import GradientStep, LoaderBatches, run_training
from il_toolkit.train.supervised import fit_loader


def as_vla(model: VLAModel | str | os.PathLike) -> VLAModel:
    """A :class:`VLAModel`, or the one saved at a path (``--model_path``)."""
    if isinstance(model, VLAModel):
        return model
    return VLAModel.load(model)


def require_retrainable_on_rollouts(policy: VLAModel, algorithm: str) -> VLAModel:
    """``policy``, unless DAgger and GAIL cannot retrain it on rollouts in one env: a multi-task
    model (one env's actions do not fill its slots) or one that estimates its state from its cameras
    (rollouts record no simulator state for its estimator to learn from)."""
    if len(policy.tasks) > 1:
        raise ValueError(
            f"{algorithm} fine-tunes a single-task VLA, but this one has {len(policy.tasks)} tasks {list(policy.tasks)}: "
            "fine-tune it with VLA BC on its datasets (--dataset A,B), or start from a single-task model"
        )
    if policy.network.estimator is not None or policy.network.goals is not None:
        part = "state estimator" if policy.network.estimator is not None else "goal grounding"
        raise ValueError(
            f"{algorithm} retrains a VLA on its own rollouts, which record no simulator state for this VLA's {part} "
            "to learn from: fine-tune it with VLA BC on demonstrations that record the state (environment_state=True, "
            "--estimate_state), or start from a VLA without it"
        )
    return policy


def require_fixed_instruction(env: Any, algorithm: str) -> None:
    """Refuse an env that draws a new instruction every episode (the two-target PushT): VLA DAgger
    and GAIL retrain on their own rollouts under the one instruction the policy holds."""
    if getattr(env.unwrapped, "instruction_per_episode", False):
        raise ValueError(
            f"{algorithm} retrains a VLA on its rollouts under one instruction, but {common.env_id_of(env)} draws a new "
            "instruction every episode: train on its demonstrations with VLA BC, or train an instruction-grounded "
            "policy with il-toolkit train flow --dataset <its dataset>")


class TrajectoryChunkDataset(ChunkedEpisodeDataset):
    """Chunked samples (the :class:`ChunkedEpisodeDataset` layout) from in-memory trajectories
    (``obs`` with one more step than ``acts``, as imitation's ``Trajectory``)."""

    def __init__(self, trajectories: Sequence[Any], chunk_size: int, instruction: str, n_obs_steps: int = 1) -> None:
        from imitation.data.types import maybe_unwrap_dictobs

        self.dataset_id, self.split = "in-memory", "train"
        self.chunk_size, self.n_obs_steps, self.instruction = chunk_size, n_obs_steps, instruction
        self.observation_space = self.action_space = None
        self.episodes = []
        for i, t in enumerate(trajectories):
            frames = flatten_observation(maybe_unwrap_dictobs(t.obs))
            acts = np.asarray(t.acts, dtype=np.float32).reshape(len(t.acts), -1)
            self.episodes.append({"id": i, "frames": {k: v[:-1] for k, v in frames.items()}, "actions": acts})
        self.index = [(e, s) for e, episode in enumerate(self.episodes) for s in range(len(episode["actions"]))]


def chunk_windows(dataset: ChunkedEpisodeDataset, chunk: int,
                  state_key: str = STATE_KEY) -> tuple[np.ndarray, np.ndarray]:
    """``(chunks (N, chunk, Da), states (N, Ds))``: for every frame, the actions from it on (the last
    repeated past the episode's end) and its state (the frames' ``state_key``), what a VLA with a
    feature pipeline normalises."""
    chunks = []
    for episode in dataset.episodes:
        actions = np.asarray(episode["actions"], dtype=np.float64)
        index = np.minimum(np.arange(len(actions))[:, None] + np.arange(chunk)[None], len(actions) - 1)
        chunks.append(actions[index])
    return np.concatenate(chunks), frame_values(dataset, state_key)


def frame_values(dataset: ChunkedEpisodeDataset, key: str) -> np.ndarray:
    """The frames' ``key`` entry ``(N, ...)`` float64, one row per frame with an action, in
    :func:`chunk_windows`' order."""
    return np.concatenate([np.asarray(episode["frames"][key], dtype=np.float64)[: len(episode["actions"])]
                           for episode in dataset.episodes])


def estimated_state_fields(env_id: str) -> dict[str, Any]:
    """``VLAModel.for_dataset`` fields of a new VLA that reads its cameras through a state estimator
    in ``env_id`` (``il-toolkit train bc --estimate_state``): the features, chunk size and actions
    executed per plan that ``il-toolkit train flow`` gives the env's state observation (PushT 1 and
    1, ALOHA 16 and 8)."""
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning.defaults import defaults_for

    state_env = make_env(env_id, obs_type="state")
    try:
        settings, features = defaults_for(state_env), default_state_features(state_env)
    finally:
        state_env.close()
    return {"estimate_state": True, "features": None if features is None else features.to_json(),
            "chunk_size": settings["horizon"], "n_action_steps": settings["n_action_steps"]}


def frame_tasks(dataset: ChunkedEpisodeDataset) -> list[str]:
    """The instruction of every frame, in :func:`chunk_windows`' order (a multi-task dataset's
    episodes carry their task; otherwise the dataset's one instruction)."""
    return [episode.get("task", dataset.instruction) for episode in dataset.episodes for _ in episode["actions"]]


def dataset_statistics(dataset: Any, max_batches: int = 50) -> tuple[np.ndarray, np.ndarray | None]:
    """``(actions (N, Da), states (N, Ds) or None)`` for normalisation: all frames of a
    :class:`ChunkedEpisodeDataset` (NaN where a multi-task frame's task does not own the
    dimension), else the first ``max_batches`` batches of an iterable."""
    if isinstance(dataset, ChunkedEpisodeDataset):
        return episode_statistics(dataset)
    acts, states = [], []
    for i, batch in enumerate(dataset):
        if i >= max_batches:
            break
        acts.append(np.asarray(batch["action"]).reshape(-1, np.asarray(batch["action"]).shape[-1]))
        if "observation.state" in batch:
            s = np.asarray(batch["observation.state"])
            states.append(s.reshape(-1, s.shape[-1]))
    return np.concatenate(acts), (np.concatenate(states) if states else None)


class VLABehavioralCloning:
    """Behavioural cloning of a :class:`VLAModel` from LeRobot-style batches (the user guide).

    Args:
        model: a :class:`VLAModel` or the path of a saved one (``--model_path``).
        config: an :class:`ILConfig` (``bc_epochs``, ``learning_rate``, ``weight_decay``,
            ``output_dir``, ``seed``, ``wandb_project``); ``ILConfig.behavioral_cloning()`` by default.
        use_wandb: log to wandb (offline unless ``WANDB_MODE`` says otherwise).
        dataset_name: a label for the run (``run.json``, the wandb run name).
        env: the env the policy acts in (only DAgger and ``train(..., evaluate_env=...)`` need it).
    """

    def __init__(self, model: VLAModel | str | os.PathLike, config: ILConfig | None = None,
                 use_wandb: bool | None = None, dataset_name: str | None = None, *, env: Any = None,
                 progress: bool = True) -> None:
        self.config = common.own_config(config, ILConfig.behavioral_cloning, "vla_bc")
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.dataset_name = dataset_name
        self.progress = progress
        self.rng = common.seed_everything(self.config.seed)
        self.policy = as_vla(model)
        self.env = env
        self._normalizer_fitted = self.policy.normalizer_fitted

    @property
    def model(self) -> VLAModel:
        return self.policy

    def prepare(self, dataloader: Iterable[Any]) -> None:
        """Fit the normaliser (first run only) and adopt the dataset's env spaces."""
        dataset = getattr(dataloader, "dataset", dataloader)
        if not self._normalizer_fitted:
            network = self.policy.network
            pipeline = network.features is not None or network.slot_features is not None
            if network.estimator is not None or network.goals is not None:
                self._fit_with_recorded_state(dataset)
            elif pipeline and network.config.state_dim and isinstance(dataset, ChunkedEpisodeDataset):
                actions, states = chunk_windows(dataset, network.config.chunk_size)
                self.policy.fit_normalizer(actions, states, frame_tasks(dataset))
            else:
                self.policy.fit_normalizer(*dataset_statistics(
                    dataset if isinstance(dataset, ChunkedEpisodeDataset) else dataloader))
            self._normalizer_fitted = True
        if getattr(dataset, "observation_space", None) is not None and dataset.action_space is not None:
            self.policy.observation_space, self.policy.action_space = dataset.observation_space, dataset.action_space
        instruction = getattr(dataset, "instruction", None)
        if instruction and not self.policy._instruction_given:
            self.policy.instruction = instruction

    def _fit_with_recorded_state(self, dataset: Any) -> None:
        """Statistics of a VLA that learns from the recorded state: with a state estimator, of the
        recorded full states (what the head reads in training) and of the observation's own state
        (what the estimator is given); with goal grounding, of the states and actions moved into
        the frame of each frame's recorded goal."""
        network = self.policy.network
        if not isinstance(dataset, ChunkedEpisodeDataset) or ENV_STATE_KEY not in dataset.episodes[0]["frames"]:
            raise ValueError("a VLA with a state estimator or goal grounding trains on a ChunkedEpisodeDataset "
                             "(PushTDataset, ...) loaded with environment_state=True")
        chunk = network.config.chunk_size
        actions, recorded = chunk_windows(dataset, chunk, ENV_STATE_KEY)
        observed = frame_values(dataset, STATE_KEY) if STATE_KEY in dataset.episodes[0]["frames"] else None
        if network.estimator is not None:
            self.policy.fit_normalizer(actions, recorded, given=observed)
        else:
            start, stop = network.goals.goal_dims
            self.policy.fit_normalizer(actions, observed, goals=recorded[:, start:stop])

    def train(self, dataloader: Iterable[Any], val_dataloader: Iterable[Any] | None = None, *,
              epochs: int | None = None, max_steps: int | None = None, evaluate_env: str | None = None,
              env_kwargs: dict[str, Any] | None = None, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train for ``bc_epochs`` (or ``epochs``; ``max_steps`` caps optimizer steps), keep the
        lowest-validation-loss weights (training loss without ``val_dataloader``), save
        ``best/`` and ``last/`` under ``output_dir``; with ``evaluate_env``, evaluate there."""
        start = time.perf_counter()
        output_dir = Path(self.config.output_dir)
        common.write_run_files(output_dir, self.config, {
            "algorithm": "vla_bc", "dataset": self.dataset_name, "policy": repr(self.policy),
            "n_train_samples": len(getattr(dataloader, "dataset", [])) or None, **(run_info or {}),
        })
        logger = MetricLogger(output_dir, use_wandb=self.use_wandb, project=self.config.wandb_project,
                              run_name=f"vla-bc-{self.dataset_name or 'data'}-s{self.config.seed}", config=self.config.to_dict(),
                              console=self.progress)
        try:
            history = self.fit_batches(dataloader, val_dataloader, logger, epochs=epochs, max_steps=max_steps)
        except KeyboardInterrupt:
            if self._normalizer_fitted:
                common.save_interrupted(self.policy, output_dir)
            raise
        finally:
            logger.close()
        seconds = time.perf_counter() - start
        results: dict[str, Any] = {
            **self.save(output_dir, history["last_state"]),
            "best_epoch": history["best_epoch"], "best_val_loss": history["best_val_loss"],
            "final_train_loss": history["final_train_loss"], "losses": history["losses"],
            "train_samples": history["samples"], "train_seconds": seconds,
            "samples_per_second": history["samples"] / max(history["fit_seconds"], 1e-9),
        }
        if evaluate_env is not None:
            results["eval"] = self.evaluate(output_dir / "eval.json", env=evaluate_env, env_kwargs=env_kwargs)
        return results

    def train_epoch(self, dataloader: Iterable[Any] | None = None) -> dict[str, Any]:
        """One more epoch (the user guide's warm-start loop: ``for _ in range(n): bc_trainer.train_epoch()``)
        on ``dataloader``, which the first call must give and later calls may leave out. Each call is
        a fit of one epoch with its own optimiser (AdamW's moment estimates start afresh), as in
        :meth:`BehavioralCloning.train_epoch`; ``train(epochs=n)`` keeps one optimiser throughout.
        Metrics go to ``output_dir/metrics.jsonl`` (not wandb); returns the epoch's ``train/loss``."""
        if dataloader is not None:
            self._epoch_loader = dataloader
        if getattr(self, "_epoch_loader", None) is None:
            raise ValueError("the first train_epoch call needs the data: bc_trainer.train_epoch(dataloader)")
        done = getattr(self, "_epochs_done", 0)
        logger = MetricLogger(self.config.output_dir, use_wandb=False, console=self.progress)
        try:
            history = self.fit_batches(self._epoch_loader, None, logger, epochs=1, step_offset=done)
        finally:
            logger.close()
        self._epochs_done = done + 1
        return {"train/loss": history["final_train_loss"], "epoch": self._epochs_done}

    def fit_batches(self, dataloader: Iterable[Any], val_dataloader: Iterable[Any] | None, logger: MetricLogger, *,
                    epochs: int | None = None, max_steps: int | None = None, step_offset: int = 0,
                    keep: str | None = None) -> dict[str, Any]:
        """Fit on ``dataloader``'s batches in the toolkit's loop (``bc_epochs`` or ``epochs``; ``max_steps``
        caps optimizer steps), logging per epoch at ``step_offset + epoch``; ``keep``: "best" (lowest
        validation loss, training loss without ``val_dataloader``) or "last" (default: the config's
        rule for BC). Returns the history with ``last_state``."""
        self.prepare(dataloader)
        losses: list[float] = []
        samples = [0.0]

        def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            losses.append(metrics["train/loss"])
            samples[0] += metrics.get("train/samples", 0.0)
            logger.log({**metrics, "epoch": step_offset + epoch}, step=step_offset + epoch)

        fit_start = time.perf_counter()
        history = fit_loader(
            self.policy, dataloader, val_dataloader, epochs=epochs or self.config.bc_epochs,
            learning_rate=self.config.learning_rate, weight_decay=self.config.weight_decay,
            on_epoch_end=on_epoch_end, max_steps=max_steps, progress=self.progress, desc="vla-bc",
            keep=keep or self.config.kept_weights("bc"),
        )
        fit_seconds = time.perf_counter() - fit_start
        return {"best_epoch": history.best_epoch, "best_val_loss": history.best_val_loss,
                "final_train_loss": history.final_train_loss, "last_state": history.last_state, "losses": losses,
                "samples": samples[0], "fit_seconds": fit_seconds}

    @property
    def module(self) -> torch.nn.Module:
        """The torch module holding the model's trainable state."""
        return self.policy.model

    def save(self, output_dir: Path, last_state: dict[str, torch.Tensor]) -> dict[str, str]:
        """``last/`` from ``last_state``, ``best/`` from the current (best) weights."""
        module = self.policy.model
        best_state = {k: v.clone() for k, v in module.state_dict().items()}
        module.load_state_dict(last_state)
        self.policy.save(output_dir / "last")
        module.load_state_dict(best_state)
        return {"policy_path": str(self.policy.save(output_dir / "best")), "last_policy_path": str(output_dir / "last")}

    def evaluate(self, path: Path | None = None, *, env: Any = None, env_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
        """Evaluate on ``eval_episodes`` seeds in ``env`` (default: the trainer's env), acting on
        that env's registered instruction."""
        from il_toolkit.envs import env_entry
        from il_toolkit.evaluation import evaluate_and_report

        target = env if env is not None else self.env
        if target is None:
            raise ValueError("no env to evaluate in: pass env= (e.g. 'il_toolkit/PushT-v0')")
        env_id = target if isinstance(target, str) else common.env_id_of(target)
        self.policy.set_instruction(env_entry(env_id).instruction)
        return evaluate_and_report(self.policy, target, self.config.eval_episodes, path, env_kwargs=env_kwargs,
                                   progress=self.progress)

    # -- the contract DAgger relies on (BehavioralCloning.fit) ------------------------------
    def adopt(self, policy: VLAModel) -> None:
        """Continue from ``policy``, already trained (a resumed DAgger round's)."""
        self.policy = policy
        self._normalizer_fitted = True

    def fit(self, train_demos: Sequence[Any], val_demos: Sequence[Any], logger: MetricLogger, *,
            epochs: int | None = None, step_offset: int = 0, keep: str | None = None,
            refit_normalizer: bool = False) -> dict[str, Any]:
        """Train on trajectories (DAgger's aggregate): chunked samples, the toolkit's loop; ``keep`` and
        ``refit_normalizer`` as in :meth:`BehavioralCloning.fit`."""
        if refit_normalizer:
            self._normalizer_fitted = False
        chunk = self.policy.network.config.chunk_size
        instruction = self.policy.instruction
        train_set = TrajectoryChunkDataset(train_demos, chunk, instruction)
        loader = create_lerobot_dataloader(train_set, batch_size=self.config.batch_size, shuffle=True,
                                           seed=int(self.rng.integers(2**31)))
        val_loader = None
        if val_demos:
            val_set = TrajectoryChunkDataset(val_demos, chunk, instruction)
            val_loader = create_lerobot_dataloader(val_set, batch_size=self.config.batch_size, shuffle=False)
        history = self.fit_batches(loader, val_loader, logger, epochs=epochs, step_offset=step_offset, keep=keep)
        return {**history, "n_train": len(train_set), "n_val": 0 if val_loader is None else len(val_loader.dataset)}


# -- VLA GAIL ----------------------------------------------------------------------------------
ADVANTAGE_TEMPERATURE = 1.0  # weights exp(A / T) on normalised advantages
MAX_WEIGHT = 20.0
ROLLOUT_SEED = 3_000_000  # apart from demonstrations (0 ...), evaluation (1,000,000 ...) and GAIL's in-training evaluation


class Discriminator(torch.nn.Module):
    """GAIL's discriminator as the user guide sizes it: (observation features, action) -> a logit that is high for the
    expert; two hidden layers of ``hidden_dim``. ``reward = -log(1 - D) = softplus(logit)``."""

    def __init__(self, feature_dim: int, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        from il_toolkit.model.encoders import mlp

        self.net = mlp(feature_dim + action_dim, hidden_dim, 1, n_hidden=2)

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, actions], dim=-1)).squeeze(-1)

    def reward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(self(features, actions))


class _Weighted(torch.utils.data.Dataset):
    """Adds ``"weight"`` to every sample of ``dataset`` (one weight per index, or a constant)."""

    def __init__(self, dataset: Any, weights: np.ndarray | float) -> None:
        self.dataset, self.weights = dataset, weights

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        weight = self.weights if np.isscalar(self.weights) else self.weights[i]
        return {**self.dataset[i], "weight": torch.tensor(float(weight))}


class VLAGAIL:
    """Adversarial imitation for a :class:`VLAModel` (the user guide's ``VLAGAIL``).

    A flow-matching VLA has no tractable action log-probability, so PPO (what :class:`GAIL`
    uses for SB3 policies) does not apply. Each round instead: roll the VLA out for
    ``ppo_n_steps`` env steps (sampling noise on); train GAIL's discriminator
    (``gail_disc_hidden_dim``, ``gail_disc_updates``, ``gail_disc_lr``, ``gail_disc_noise``) to tell
    expert (observation, action) pairs from the VLA's, on the VLA's own observation features;
    turn its reward ``gail_reward_scale * -log(1 - D)`` into discounted returns (``ppo_gamma``)
    and normalised advantages; then, for ``ppo_epochs``, regress the VLA's flow loss on its own
    chunks weighted by ``exp(A)`` (advantage-weighted regression, capped at 20) together with
    as many expert chunks at weight 1 (GAIL's BC warm start, kept as a regulariser).
    Retraining is :class:`VLABehavioralCloning`'s (the shared loader loop).

    Args:
        env: the env (id or instance); ``env_kwargs`` apply to an id.
        model: a :class:`VLAModel` or the path of a saved one (``--model_path``), typically VLA BC's.
        config: an :class:`ILConfig` (``ILConfig.gail()`` by default).
    """

    def __init__(self, env: Any, model: VLAModel | str | os.PathLike, config: ILConfig | None = None,
                 use_wandb: bool | None = None, *, env_kwargs: dict[str, Any] | None = None,
                 dataset_name: str | None = None, progress: bool = True) -> None:
        from il_toolkit.envs import env_entry, make_env

        self.env_kwargs, self.dataset_name = dict(env_kwargs or {}), dataset_name
        self.config = common.own_config(config, ILConfig.gail, "vla_gail")
        self.env = make_env(env, **(env_kwargs or {})) if isinstance(env, str) else env
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.progress = progress
        self.bc = VLABehavioralCloning(model, self.config, use_wandb=False, env=self.env, progress=progress)
        require_retrainable_on_rollouts(self.policy, "VLA GAIL")
        require_fixed_instruction(self.env, "VLA GAIL")
        if not self.policy._instruction_given:
            self.policy.instruction = env_entry(common.env_id_of(self.env)).instruction
        network = self.policy.network
        self.discriminator = Discriminator(network.config.head_dim, network.config.action_dim, self.config.gail_disc_hidden_dim)
        self.disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.config.gail_disc_lr)
        self.rng = self.bc.rng

    @property
    def policy(self) -> VLAModel:
        return self.bc.policy

    # -- pieces of a round ------------------------------------------------------------------
    def rollouts(self, round_index: int) -> tuple[list[Any], dict[str, float]]:
        """Whole episodes of the VLA (stochastic) until ``ppo_n_steps`` steps are collected."""
        from il_toolkit.rollout import rollout_episode

        trajectories, returns, successes, steps, i = [], [], [], 0, 0
        while steps < self.config.ppo_n_steps:
            episode = rollout_episode(self.policy, self.env, ROLLOUT_SEED + 1000 * round_index + i, deterministic=False)
            trajectories.append(episode.to_trajectory())
            returns.append(episode.sum_reward)
            successes.append(episode.success)
            steps, i = steps + episode.length, i + 1
        return trajectories, {"round/episodes": i, "round/steps": steps, "round/mean_return": float(np.mean(returns)),
                              "round/pc_success": 100 * float(np.mean(successes))}

    @torch.no_grad()
    def features(self, dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(observation features (N, head_dim), normalised first actions (N, Da))`` in dataset order."""
        network = self.policy.network
        network.eval()
        feats, acts = [], []
        for batch in create_lerobot_dataloader(dataset, batch_size=64, shuffle=False):
            feats.append(network.encode(batch).mean(1))
            acts.append(network.normalizer.normalize_action(torch.as_tensor(batch["action"][:, 0]).float()))
        return torch.cat(feats), torch.cat(acts)

    def train_discriminator(self, expert: tuple[torch.Tensor, torch.Tensor], generated: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        """``gail_disc_updates`` full-batch steps of binary cross-entropy (expert = 1)."""
        features = torch.cat([expert[0], generated[0]])
        actions = torch.cat([expert[1], generated[1]])
        labels = torch.cat([torch.ones(len(expert[0])), torch.zeros(len(generated[0]))])
        noise = self.config.gail_disc_noise

        def loss(f: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            if noise:
                f, a = f + noise * torch.randn_like(f), a + noise * torch.randn_like(a)
            return torch.nn.functional.binary_cross_entropy_with_logits(self.discriminator(f, a), labels), {}

        step = GradientStep(loss, self.discriminator, optimizer=self.disc_optimizer)
        history = run_training(step, LoaderBatches([(features, actions)] * self.config.gail_disc_updates),
                               optimizers=step.optimizers, module=self.discriminator, epochs=1)
        self.discriminator.eval()
        with torch.no_grad():
            logits = self.discriminator(features, actions)
            accuracy = ((logits > 0).float() == labels).float()
        n = len(expert[0])
        return {"disc_loss": history.final_train_loss, "disc_acc": float(accuracy.mean()),
                "disc_acc_expert": float(accuracy[:n].mean()), "disc_acc_gen": float(accuracy[n:].mean())}

    def advantage_weights(self, trajectories: Sequence[Any], rewards: torch.Tensor) -> tuple[np.ndarray, float]:
        """Per-step weights ``min(exp(A / T), 20)`` (mean 1) from discounted returns of ``rewards``
        (concatenated in trajectory order), and the mean reward."""
        values = rewards.numpy() * self.config.gail_reward_scale
        returns, start = np.empty_like(values), 0
        for t in trajectories:
            running = 0.0
            for k in reversed(range(start, start + len(t.acts))):
                running = values[k] + self.config.ppo_gamma * running
                returns[k] = running
            start += len(t.acts)
        advantages = (returns - returns.mean()) / (returns.std() + 1e-8)
        weights = np.minimum(np.exp(advantages / ADVANTAGE_TEMPERATURE), MAX_WEIGHT)
        return weights / weights.mean(), float(values.mean())

    # -- the run -------------------------------------------------------------------------------
    def train(self, expert_dataset: Any, total_timesteps: int | None = None, *, evaluate_policy: bool = True) -> dict[str, Any]:
        """Adversarial rounds until ``total_timesteps`` env steps; ``expert_dataset`` is a chunked
        dataset (``PushTDataset(...)``) or a dataloader over one. Saves ``best/`` (= the last
        policy) and ``last/`` under ``output_dir``; returns per-round figures and the evaluation."""
        start = time.perf_counter()
        expert_set = getattr(expert_dataset, "dataset", expert_dataset)
        steps_total = total_timesteps or self.config.total_timesteps
        chunk = self.policy.network.config.chunk_size
        output_dir = Path(self.config.output_dir)
        common.write_run_files(output_dir, self.config, {"algorithm": "vla_gail", "env_id": common.env_id_of(self.env),
                                                         "env_kwargs": self.env_kwargs, "dataset": self.dataset_name,
                                                         "policy": repr(self.policy), "total_timesteps": steps_total})
        logger = MetricLogger(output_dir, use_wandb=self.use_wandb, project=self.config.wandb_project,
                              run_name=f"vla-gail-{common.env_id_of(self.env)}-s{self.config.seed}", config=self.config.to_dict(),
                              console=self.progress)
        self.bc.prepare(torch.utils.data.DataLoader(expert_set, batch_size=64, collate_fn=_collate()))
        rounds: list[dict[str, Any]] = []
        done_steps = 0
        try:
            while done_steps < steps_total:
                r = len(rounds)
                trajectories, stats = self.rollouts(r)
                done_steps += int(stats["round/steps"])
                generated = TrajectoryChunkDataset(trajectories, chunk, self.policy.instruction)
                n_expert = min(len(expert_set), max(self.config.gail_demo_batch_size, len(generated)))
                expert_subset = torch.utils.data.Subset(expert_set, self.rng.choice(len(expert_set), n_expert, replace=False).tolist())
                gen_features = self.features(generated)
                stats.update(self.train_discriminator(self.features(expert_subset), gen_features))
                with torch.no_grad():
                    rewards = self.discriminator.reward(*gen_features)
                weights, stats["mean_reward"] = self.advantage_weights(trajectories, rewards)
                stats["round/max_weight"] = float(weights.max())
                mixed = torch.utils.data.ConcatDataset([
                    _Weighted(generated, weights),
                    _Weighted(torch.utils.data.Subset(expert_subset, list(range(min(len(generated), n_expert)))), 1.0),
                ])
                loader = torch.utils.data.DataLoader(mixed, batch_size=self.config.batch_size, shuffle=True,
                                                     collate_fn=_collate(),
                                                     generator=torch.Generator().manual_seed(int(self.rng.integers(2**31))))
                history = self.bc.fit_batches(loader, None, logger, epochs=self.config.ppo_epochs,
                                              step_offset=r * self.config.ppo_epochs, keep="last")  # adversarial
                stats.update({"round": r + 1, "timesteps": done_steps, "train/loss": history["final_train_loss"]})
                logger.log(stats, step=done_steps)
                rounds.append(stats)
        finally:
            logger.close()
        self.policy.save(output_dir / "last")
        results: dict[str, Any] = {"policy_path": str(self.policy.save(output_dir / "best")),
                                   "last_policy_path": str(output_dir / "last"), "rounds": rounds,
                                   "total_timesteps": done_steps, "train_seconds": time.perf_counter() - start}
        if evaluate_policy:
            results["eval"] = self.bc.evaluate(output_dir / "eval.json", env=self.env)
        return results


def _collate():
    from il_toolkit.train.datasets.lerobot_dataset import collate

    return collate
