"""The adapters behind ``METHOD_REGISTRY``: train one policy from an expert dataset.

Each adapter builds the method's ``ILConfig`` preset, applies the trial's budget, switches off
everything the harness does itself (wandb, the trainer's own final evaluation) and returns
where the policy was saved. Imported only when a trial runs (torch, imitation, SB3).
"""

from __future__ import annotations

import functools
from dataclasses import fields
from typing import Any

from il_toolkit.bench.methods import TrainOutcome, TrainRequest

_ILCONFIG_FIELDS: frozenset[str] | None = None


def ilconfig_fields() -> frozenset[str]:
    """Names of the ``ILConfig`` fields a budget may set."""
    global _ILCONFIG_FIELDS
    if _ILCONFIG_FIELDS is None:
        from il_toolkit.config.training_config import ILConfig

        _ILCONFIG_FIELDS = frozenset(f.name for f in fields(ILConfig))
    return _ILCONFIG_FIELDS


def _config(preset: str, request: TrainRequest, **fixed: Any):
    """``ILConfig.<preset>()`` with the trial's seed and output dir, the budget's overrides and
    ``fixed`` (the harness's own settings, which a budget may not change)."""
    from il_toolkit.config.training_config import ILConfig

    overrides = {k: v for k, v in request.budget.items() if k in ilconfig_fields()}
    factory = getattr(ILConfig, preset)
    return factory(**{**overrides, "seed": request.seed, "output_dir": request.output_dir, "use_wandb": False, **fixed})


def _transitions(trajectories: Any) -> int:
    return int(sum(len(t.acts) for t in trajectories))


def train_bc(request: TrainRequest) -> TrainOutcome:
    """Behavioural cloning on the whole dataset; the best-validation-loss policy is kept."""
    from il_toolkit.envs import make_env
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    env = make_env(request.env_id, **request.env_kwargs)
    try:
        trainer = BehavioralCloning(env, _config("behavioral_cloning", request), use_wandb=False, progress=request.progress)
        demos = load_demonstrations(request.dataset_id, env=env)
        result = trainer.train(trajectories=demos, evaluate_policy=False)
    finally:
        env.close()
    return TrainOutcome(result["policy_path"], _transitions(demos), {
        "trainer_train_seconds": result["train_seconds"], "best_epoch": result["best_epoch"],
        "best_val_loss": result["best_val_loss"],
    })


def train_dagger(request: TrainRequest, variant: str = "dagger") -> TrainOutcome:
    """DAgger (or one of its gated variants) with the dataset as its initial D0 and the env's
    registered expert as labeller. Its own end-of-run evaluation is cut to one episode (the harness
    evaluates properly). The expert labels counted are D0's plus every state the expert labelled."""
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.dagger import DAgger

    env = make_env(request.env_id, **request.env_kwargs)
    try:
        config = _config("dagger", request, eval_episodes=1, dagger_variant=variant)
        trainer = DAgger(env, None, config, use_wandb=False, progress=request.progress)
        result = trainer.train(initial_dataset=request.dataset_id)
    finally:
        env.close()
    account = result["labels"]
    return TrainOutcome(result["policy_path"], int(result["expert_labels"]), {
        "trainer_train_seconds": result["train_seconds"], "n_episodes": result["n_episodes"],
        **{k: account[k] for k in ("interventions", "context_switches", "expert_share", "expert_queries")},
    })


train_hg_dagger = functools.partial(train_dagger, variant="hg_dagger")
train_ensemble_dagger = functools.partial(train_dagger, variant="ensemble_dagger")
train_thrifty_dagger = functools.partial(train_dagger, variant="thrifty_dagger")


def train_gail(request: TrainRequest) -> TrainOutcome:
    """GAIL for ``total_timesteps`` generator steps on the dataset's transitions. Unless the
    budget sets ``gail_demo_batch_size``, it is capped at the number of demonstration transitions."""
    from il_toolkit.envs import make_env
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.il.gail import GAIL

    env = make_env(request.env_id, **request.env_kwargs)
    try:
        demos = load_demonstrations(request.dataset_id, env=env)
        config = _config("gail", request)
        if "gail_demo_batch_size" not in request.budget:  # small demonstration budgets: use them all per update
            config = config.replace(gail_demo_batch_size=min(config.gail_demo_batch_size, _transitions(demos)))
        trainer = GAIL(env, config, use_wandb=False, progress=request.progress)
        result = trainer.train(trajectories=demos, total_timesteps=config.total_timesteps, evaluate_policy=False)
    finally:
        env.close()
    extra = {k: result[k] for k in ("train_seconds", "total_timesteps", "last_disc_acc") if k in result}
    extra["trainer_train_seconds"] = extra.pop("train_seconds", None)
    return TrainOutcome(result["policy_path"], _transitions(demos), extra)


def train_flow_bc(request: TrainRequest) -> TrainOutcome:
    """A flow-matching policy (``flow_trainer``, default the naive family; horizon 1, one
    observation) trained by BC's supervised loop on its flow-matching loss; ``flow_n_steps``
    Euler steps at inference, ``flow_d_model`` the width."""
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy, default_state_features
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.il import common
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning
    from il_toolkit.train.imitation_learning.loop import fit_normalizer

    budget = request.budget
    env = make_env(request.env_id, **request.env_kwargs)
    try:
        config = _config("behavioral_cloning", request, policy_type="mlp")
        common.seed_everything(request.seed)  # the flow model's initial weights
        policy = FlowMatchingPolicy.create(
            budget.get("flow_trainer", "naive_flow_matching_policy_trainer"), env.observation_space, env.action_space,
            horizon=1, n_obs_steps=1, d_model=int(budget.get("flow_d_model", 64)), features=default_state_features(env),
            policy_options={"n_steps": int(budget.get("flow_n_steps", 10)), "seed": request.seed},
        )
        demos = load_demonstrations(request.dataset_id, env=env)
        fit_normalizer(policy, demos)
        trainer = BehavioralCloning(env, config, use_wandb=False, policy=policy, progress=request.progress)
        result = trainer.train(trajectories=demos, evaluate_policy=False)
    finally:
        env.close()
    return TrainOutcome(result["policy_path"], _transitions(demos), {
        "trainer_train_seconds": result["train_seconds"], "best_epoch": result["best_epoch"],
        "best_val_loss": result["best_val_loss"], "flow_trainer": policy.trainer_key,
    })


def train_flow_chunked(request: TrainRequest) -> TrainOutcome:
    """A chunked flow-matching policy (diffusion-policy style) trained by the family's own
    ``TRAINER_REGISTRY`` trainer through :func:`il_toolkit.train.imitation_learning.loop.train_flow_policy`.

    Budget keys: ``flow_trainer`` (default the naive family), ``flow_steps`` (gradient steps,
    default 1000), ``flow_horizon`` (8), ``flow_n_obs_steps`` (2), ``flow_n_action_steps``
    (horizon - n_obs_steps + 1), ``flow_n_steps`` (ODE steps at inference, 10), ``flow_d_model``
    (64); ``batch_size`` and ``learning_rate`` as in ``ILConfig``.
    """
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    budget = request.budget
    config = _config("behavioral_cloning", request)
    horizon = int(budget.get("flow_horizon", 8))
    n_obs_steps = int(budget.get("flow_n_obs_steps", 2))
    policy_options: dict[str, Any] = {"n_steps": int(budget.get("flow_n_steps", 10))}
    if "flow_n_action_steps" in budget:
        policy_options["n_action_steps"] = int(budget["flow_n_action_steps"])
    env = make_env(request.env_id, **request.env_kwargs)
    try:
        demos = load_demonstrations(request.dataset_id, env=env)
        steps = int(budget.get("flow_steps", 1000))
        policy = train_flow_policy(
            budget.get("flow_trainer", "naive_flow_matching_policy_trainer"), demos, env.observation_space,
            env.action_space, steps=steps, batch_size=config.batch_size, learning_rate=config.learning_rate,
            seed=request.seed, device=config.device, policy_options=policy_options, features=default_state_features(env),
            spec_fields={"horizon": horizon, "n_obs_steps": n_obs_steps, "d_model": int(budget.get("flow_d_model", 64))},
        )
    finally:
        env.close()
    path = policy.save(f"{request.output_dir}/policy")
    return TrainOutcome(str(path), _transitions(demos), {"flow_trainer": policy.trainer_key, "steps": steps,
                                                        "horizon": horizon, "n_obs_steps": n_obs_steps})


def train_flow_estimated_state(request: TrainRequest) -> TrainOutcome:
    """Pixels through an estimated state (``il-toolkit train flow --estimate_state``'s route): a
    flow-matching policy trained on the full state recorded beside the pixel demonstrations,
    behind a state estimator that reads that state off the cameras; acting reads the cameras
    and the agent's own position only.

    Budget keys: ``flow_steps`` (state policy steps, default: ``train flow``'s default for the
    state env: PushT 6,000, ALOHA 40,000), ``estimator_steps`` (3,000), ``estimator_stride`` (4; 2
    for small objects), ``recombined_frames`` (frames on which the estimator first locates the
    objects for ``locate_steps``, 2,000; default: 6,000 where the env renders given states, ALOHA;
    0: none), ``noisy_copies`` (copies of each episode whose objects' positions carry an
    estimate's error, for the state policy; default: 2 there, 0 elsewhere) and ``state_noise``
    (their offset and jitter standard deviations, ``[0.006, 0.005]``); ``batch_size`` and
    ``learning_rate`` as in ``ILConfig`` for the state policy (the estimator: 64 and 1e-3).
    """
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.minari_io import load_demonstrations, load_states
    from il_toolkit.train.imitation_learning.defaults import defaults_for, state_policy_spec_fields
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.state_estimation import (
        DEFAULT_LOCATE_STEPS,
        locating_options,
        noise_options,
        state_trajectories,
        train_estimated_state_policy,
    )

    budget = request.budget
    config = _config("behavioral_cloning", request)
    env, state_env = make_env(request.env_id, **request.env_kwargs), make_env(request.env_id, obs_type="state")
    try:
        demos, states = load_demonstrations(request.dataset_id, env=env), load_states(request.dataset_id, env_id=request.env_id)
        settings = defaults_for(state_env)
        steps = int(budget.get("flow_steps", settings["steps"]))
        frames = budget.get("recombined_frames")  # None: the default where the env can render given states
        copies = budget.get("noisy_copies")
        noise = noise_options(env, None if copies is None else int(copies), budget.get("state_noise"), seed=request.seed)
        state_policy = train_flow_policy(
            "naive_flow_matching_policy_trainer", state_trajectories(demos, states, **noise), state_env.observation_space,
            state_env.action_space, steps=steps, batch_size=config.batch_size, learning_rate=config.learning_rate,
            seed=request.seed, device=config.device, features=default_state_features(state_env),
            spec_fields=state_policy_spec_fields(settings),
            policy_options={"n_action_steps": settings["n_action_steps"]},
        )
        policy, report = train_estimated_state_policy(
            demos, states, state_policy, env.observation_space, env.action_space,
            steps=int(budget.get("estimator_steps", 3000)), stride=int(budget.get("estimator_stride", 4)),
            seed=request.seed, progress=request.progress, locate_steps=int(budget.get("locate_steps", DEFAULT_LOCATE_STEPS)),
            **locating_options(env, states, None if frames is None else int(frames), seed=request.seed))
    finally:
        env.close()
        state_env.close()
    path = policy.save(f"{request.output_dir}/policy")
    return TrainOutcome(str(path), _transitions(demos), {"steps": steps, "estimator_steps": report["steps"],
                                                        "estimator_seconds": round(report["seconds"], 1)})



def train_vla(request: TrainRequest) -> TrainOutcome:
    """VLA BC from camera demonstrations that record the env's state (``il-toolkit train bc
    --estimate_state``): the built-in VLA with a state estimator, the state env's feature pipeline
    and chunking. Budget keys: ``vla_steps`` (3,000); ``batch_size`` (256) and ``learning_rate``
    (1e-3) as in ``ILConfig``."""
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, create_lerobot_dataloader
    from il_toolkit.train.il.vla import VLABehavioralCloning, estimated_state_fields

    budget = request.budget
    config = _config("behavioral_cloning", request, batch_size=int(budget.get("batch_size", 256)),
                     learning_rate=float(budget.get("learning_rate", 1e-3)), bc_epochs=10_000)
    fields = estimated_state_fields(request.env_id)
    data = ChunkedEpisodeDataset(request.dataset_id, "all", chunk_size=fields["chunk_size"], environment_state=True)
    model = VLAModel.for_dataset(data, seed=request.seed, **fields)
    steps = int(budget.get("vla_steps", 3000))
    result = VLABehavioralCloning(model, config, use_wandb=False, progress=request.progress).train(
        create_lerobot_dataloader(data, batch_size=config.batch_size, seed=request.seed), max_steps=steps)
    return TrainOutcome(result["policy_path"], len(data), {"steps": steps,
                                                           "samples_per_second": round(result["samples_per_second"], 1)})


def train_flow_instructed(request: TrainRequest) -> TrainOutcome:
    """Instructions that name the goal (``il-toolkit train flow``'s route on such a dataset,
    :func:`il_toolkit.train.instructed.train_flow_instructed_policy`): a flow-matching policy on the
    demonstrations moved into their goal's frame, behind an instruction grounder.

    Budget keys: ``flow_steps`` (default: ``train flow``'s for the frame's reference env: PushT
    6,000), ``grounder_steps`` (400); ``batch_size`` and ``learning_rate`` as in ``ILConfig``.
    """
    from il_toolkit.envs import make_env
    from il_toolkit.train.instructed import instructed_demonstrations, train_flow_instructed_policy

    budget = request.budget
    config = _config("behavioral_cloning", request)
    env = make_env(request.env_id, **request.env_kwargs)
    try:
        demos = instructed_demonstrations(request.dataset_id, env)
        policy, report = train_flow_instructed_policy(
            demos, env.observation_space, env.action_space, steps=budget.get("flow_steps"),
            grounder_steps=int(budget.get("grounder_steps", 400)), batch_size=config.batch_size,
            learning_rate=config.learning_rate, seed=request.seed, device=config.device, progress=request.progress)
    finally:
        env.close()
    path = policy.save(f"{request.output_dir}/policy")
    return TrainOutcome(str(path), _transitions(demos.trajectories),
                        {"steps": report["state_policy_steps"], "grounder_steps": report["steps"],
                         "grounder_accuracy": report["train_accuracy"]})
