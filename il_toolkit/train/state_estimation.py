"""Train the perception half of a pixel policy: a state estimator supervised by the recorded state.

``collect`` records an env's full state beside its pixel observations (the Minari info
``state``). From one such dataset:

- :func:`state_trajectories` gives the demonstrations with the recorded states as observations,
  so any state learner (flow matching, BC, DAgger's learner) trains on them as on a state dataset;
  with an :class:`EstimateNoise` (:func:`noise_options`) it adds copies whose object positions carry
  an estimator's error, so that the state policy tolerates it;
- :func:`fit_state_estimator` fits a :class:`~il_toolkit.model.state_estimator.StateEstimator`
  (images -> state) in the toolkit's one training loop;
- :func:`train_estimated_state_policy` does both halves' glue: the estimator is fitted and put in
  front of a given state policy as an
  :class:`~il_toolkit.policies.estimated_state.EstimatedStatePolicy`;
- :func:`expert_frames` renders more labelled frames from the simulator (the starts of the
  expert's episodes from other reset seeds) for the estimator alone;
- :func:`recombined_frames` renders frames that pair the agent of one recorded state with the
  objects of another, so the estimator must find the objects in the images.

Episodes are split for validation by episode (never frames of one episode on both sides).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.features.observations import STATE_KEYS, flatten_observations
from il_toolkit.model.state_estimator import COPY_TOLERANCE, StateEstimator, StateEstimatorConfig
from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.estimated_state import EstimatedStatePolicy
from il_toolkit.train.imitation_learning.defaults import (
    DEFAULT_ESTIMATE_NOISE,
    DEFAULT_LOCATE_STEPS,
    DEFAULT_NOISY_COPIES,
    DEFAULT_RECOMBINED_FRAMES,
)
from il_toolkit.train.loop import ArrayBatches, FitHistory, GradientStep, run_training, take_rows


def flat_spaces(space: spaces.Space, prefix: str = "") -> dict[str, spaces.Space]:
    """A (nested) Dict space as ``{"outer/inner": Box}``, the keys of flattened observations."""
    if not isinstance(space, spaces.Dict):
        return {prefix.rstrip("/") or "obs": space}
    flat: dict[str, spaces.Space] = {}
    for key, sub in space.spaces.items():
        flat.update(flat_spaces(sub, f"{prefix}{key}/") if isinstance(sub, spaces.Dict) else {f"{prefix}{key}": sub})
    return flat


def camera_keys(observation_space: spaces.Space) -> list[str]:
    """Flat keys of the RGB images ``(H, W, 3)`` uint8 in an observation space."""
    return [k for k, s in flat_spaces(observation_space).items()
            if isinstance(s, spaces.Box) and s.dtype == np.uint8 and len(s.shape) == 3 and s.shape[-1] == 3]


def estimator_config_for(observation_space: spaces.Space, state_space: spaces.Box, observations: dict[str, np.ndarray],
                         states: np.ndarray, unused: Sequence[int] = (), **sizes: Any) -> StateEstimatorConfig:
    """The estimator for an env: its cameras, its proprioceptive entry (the first of
    ``agent_pos``/``state``/``qpos``/``proprio``), the state's angles (from ``state_space``'s
    bounds), the state entries the observation gives exactly (found in the data) and the
    ``unused`` ones (the state policy never reads them: not estimated)."""
    cameras = camera_keys(observation_space)
    if not cameras:
        raise ValueError("a state estimator needs camera images in the observation; this space has none: "
                         f"{observation_space}. Collect with a pixel obs_type (e.g. obs_type='pixels_agent_pos')")
    flat = flat_spaces(observation_space)
    given_key = next((k for k in STATE_KEYS if k in flat), None)
    return StateEstimatorConfig.infer(cameras, given_key, observations.get(given_key) if given_key else None, states,
                                      state_space, unused, **sizes)


def flat_observation(obs: Any) -> dict[str, np.ndarray]:
    """One observation as ``{"outer/inner": array}`` (:func:`flatten_observations`), a plain array as
    ``{"obs": array}`` (the keys of :func:`flat_spaces` and :func:`estimator_data`)."""
    flat = flatten_observations(obs)
    return flat if isinstance(flat, dict) else {"obs": flat}


def expert_frames(env_id: str, n_episodes: int, *, env_kwargs: dict[str, Any] | None = None, steps: int = 100,
                  every: int = 5, seed: int = 2_000_000, decoys: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """More supervision for a state estimator, from the simulator: the camera observations and the
    env's full state at every ``every``-th of the first ``steps`` steps of the env's scripted
    expert, from ``n_episodes`` reset seeds ``seed, seed + 1, ...`` (with ``decoys``, the decoys
    come from ``seed + n_episodes, ...``: choose the range apart from the demonstrations' and the
    evaluation's). Demonstrations show as many object placements as there
    are episodes (ALOHA: 50 cube positions); these frames add one per reset where, before the
    object is reached, only the images say where it is. No action is kept. Returns
    ``({key: (N, ...)}, states (N, D))`` as :func:`estimator_data`.

    With ``decoys`` the expert goes for objects that are not there: it acts on the state with the
    object entries (those the observation does not give and that differ between resets) taken
    from another reset, while the frames and their labels show the real objects. In
    demonstrations the agent always moves towards the object, so an estimator can learn to read
    the object off the arm in the image; in closed loop the policy's own arm then says where the
    object is (ALOHA transfer: 20 mm cube error on demonstration frames, 50-100 mm in closed loop).
    Decoy frames make the arm's pose say less about the object's. (On ALOHA transfer from 48x64
    cameras neither these frames nor decoys raised closed-loop success over 5%: the estimator had
    not found the cube in the images at all, 55 mm off on fresh resets. :func:`recombined_frames`
    with :func:`fit_state_estimator`'s ``locate`` found it: 9 mm.)"""
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import privileged_state, rollout_episode

    env = make_env(env_id, **(env_kwargs or {}), max_episode_steps=steps)
    expert_env = make_env(env_id, **{**(env_kwargs or {}), "obs_type": "state"})
    expert = _ExpertOnState(make_expert(env_id, expert_env), env)
    observations: dict[str, list[np.ndarray]] = {}
    states: list[np.ndarray] = []
    try:
        env.reset(seed=seed)
        if privileged_state(env) is None:
            raise ValueError(f"{env_id} with {env_kwargs} observes its full state: a state estimator has nothing to "
                             "learn there; use a camera obs_type")
        for episode in range(n_episodes):
            if decoys:
                env.reset(seed=seed + n_episodes + episode)
                decoy_state = privileged_state(env)
                obs, _ = env.reset(seed=seed + episode)
                expert.decoy = (_object_entries(obs, privileged_state(env), decoy_state), decoy_state)
            rolled = rollout_episode(expert, env, seed + episode)
            for obs, state in list(zip(rolled.observations, rolled.states))[:steps:every]:
                for key, value in flat_observation(obs).items():
                    observations.setdefault(key, []).append(value)
                states.append(state)
    finally:
        env.close()
        expert_env.close()
    return {k: np.stack(v) for k, v in observations.items()}, np.stack(states).astype(np.float64)


def recombined_frames(env: Any, states: Sequence[np.ndarray], n_frames: int, *, fresh_share: float = 0.5,
                      seed: int = 3_000_000, rng_seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Labelled frames in which the agent's pose says nothing of the objects', for a state
    estimator: each takes the agent (every entry but the objects') from one recorded state and the
    objects' poses (``object_state_entries``) from another recorded state or, for ``fresh_share``
    of the frames, from a reset of ``env`` at a seed from ``seed`` on; ``env`` renders it without
    simulating (``observe_state``) and that state is the label. ``env``: the camera env (reset
    here); ``states``: the demonstrations' recorded states, a list of (T, D) arrays. Returns
    ``({key: (N, ...)}, states (N, D))`` as :func:`estimator_data`.

    Why: in demonstrations the arm always heads for the object, so an estimator can read the object
    off the arm in the image; in closed loop the policy's own arm then says where the object is and
    the arm follows that estimate (ALOHA transfer from three 96x128 cameras: cube error 25 mm on
    held-out demonstration frames before the grasp, 78 mm in closed loop; success 0%). Recombined
    frames break that link, where :func:`expert_frames`'s decoys only weaken it."""
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    if not 0.0 <= fresh_share <= 1.0:
        raise ValueError(f"fresh_share must be in [0, 1], got {fresh_share}")
    base = env.unwrapped
    if not can_recombine(env):
        raise ValueError(f"{base.spec.id if base.spec else type(base).__name__} cannot render a state it is given (it has "
                         "no observe_state, or not in this configuration: ALOHA renders them in joint control): "
                         "recombined frames need that; use expert_frames(..., decoys=True) instead")
    pool = np.concatenate([np.asarray(s, dtype=np.float64) for s in states])
    if pool.ndim != 2 or pool.shape[1:] != base.state_space.shape:
        raise ValueError(f"states must be (T, {base.state_space.shape[0]}) arrays of the env's state_vector, got rows "
                         f"of shape {pool.shape[1:]}")
    objects = np.asarray(base.object_state_entries)
    rng = np.random.default_rng(rng_seed)
    observations: dict[str, list[np.ndarray]] = {}
    labels = []
    for i in range(n_frames):
        state = pool[rng.integers(len(pool))].copy()
        if rng.random() < fresh_share:
            env.reset(seed=seed + i)
            state[objects] = base.state_vector()[objects]
        else:
            state[objects] = pool[rng.integers(len(pool))][objects]
        for key, value in flat_observation(base.observe_state(state)).items():
            observations.setdefault(key, []).append(value)
        labels.append(state)
    return {k: np.stack(v) for k, v in observations.items()}, np.stack(labels)


def can_recombine(env: Any) -> bool:
    """Whether ``env`` renders given states and names its objects' entries (ALOHA in joint control
    does; PushT, whose block an estimator finds without help, does not)."""
    base = env.unwrapped
    return bool(getattr(base, "renders_given_states", False)) and hasattr(base, "object_position_entries")


def locating_options(env: Any, states: Sequence[np.ndarray], n_frames: int | None = None, *,
                     seed: int = 0, memory_bytes: int = 2**30) -> dict[str, Any]:
    """:func:`train_estimated_state_policy`'s ``locate``, which makes its estimator find the objects
    in the images first: ``n_frames`` :func:`recombined_frames` (reset seeds and pairing from
    ``seed``) with the env's object positions. ``n_frames`` None: :data:`DEFAULT_RECOMBINED_FRAMES`,
    fewer if their images would pass ``memory_bytes``, none for an env that cannot render a given
    state; 0: none. A positive ``n_frames`` for such an env raises ``ValueError``."""
    if n_frames == 0 or (n_frames is None and not can_recombine(env)):
        return {}
    if not can_recombine(env):
        raise ValueError("recombined frames need an env that renders a given state (ALOHA in joint control); this "
                         "one cannot: leave the number of recombined frames at its default or 0")
    if n_frames is None:
        frame_bytes = sum(int(np.prod(space.shape)) for space in flat_spaces(env.observation_space).values())
        n_frames = min(DEFAULT_RECOMBINED_FRAMES, max(1, memory_bytes // frame_bytes))
        if n_frames < DEFAULT_RECOMBINED_FRAMES:
            print(f"recombined frames: {n_frames}, not {DEFAULT_RECOMBINED_FRAMES}, so that their images stay under "
                  f"{memory_bytes / 2**30:.0f} GiB (smaller cameras allow more)", file=sys.stderr)
    frames, frame_states = recombined_frames(env, states, n_frames, seed=3_000_000 + 100_000 * seed, rng_seed=seed)
    return {"locate": (frames, frame_states, tuple(env.unwrapped.object_position_entries))}


class _ExpertOnState:
    """The env's expert acting on the simulator's state of ``env`` (whatever the observation),
    with ``decoy = (entries, state)`` in place of the real object entries when set."""

    def __init__(self, expert: Any, env: Any) -> None:
        self.expert, self.env = expert, env
        self.decoy: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self.expert.reset()

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        from il_toolkit.rollout import privileged_state

        acted_on = privileged_state(self.env)
        if self.decoy is not None:
            entries, decoy_state = self.decoy
            acted_on[entries] = decoy_state[entries]
        return self.expert.predict(acted_on, deterministic=deterministic)


def _object_entries(obs: Any, state: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Indices of the state entries that differ between two resets' states and that the
    observation does not give itself (its agent's own position): the objects' poses."""
    vectors = [np.ravel(v) for v in flat_observation(obs).values() if np.asarray(v).dtype != np.uint8]  # not images
    given = np.concatenate(vectors) if vectors else np.zeros(0)
    differ = ~np.isclose(state, other)
    shown = np.array([np.any(np.abs(given - value) <= COPY_TOLERANCE * max(1.0, abs(value))) for value in state])
    return np.flatnonzero(differ & ~shown)


def estimator_data(trajectories: Sequence[Any], states: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every observation of every episode (the final one too), flattened, beside its state:
    ``({key: (N, ...)}, (N, D))``."""
    if len(trajectories) != len(states):
        raise ValueError(f"{len(trajectories)} episodes but states for {len(states)}")
    observations: dict[str, list[np.ndarray]] = {}
    for trajectory, episode_states in zip(trajectories, states):
        obs = dict(trajectory.obs.items()) if hasattr(trajectory.obs, "items") else {"obs": trajectory.obs}
        if len(episode_states) != len(next(iter(obs.values()))):
            raise ValueError(f"an episode has {len(episode_states)} states for {len(next(iter(obs.values())))} observations")
        for key, values in obs.items():
            observations.setdefault(key, []).append(np.asarray(values))
    return {k: np.concatenate(v) for k, v in observations.items()}, np.concatenate(states).astype(np.float64)


@dataclass(frozen=True)
class EstimateNoise:
    """An estimator's error on some state entries, for a state policy to learn to tolerate:
    ``copies`` noisy copies of each episode, whose ``entries`` get a per-episode offset and a
    per-frame jitter drawn from normals with standard deviations ``offset`` and ``jitter`` (the
    state's units; ALOHA: metres), from ``seed``.

    Why both: an estimate's error is partly a bias that lasts the episode (where the object sits
    in the images) and partly frame-to-frame. Measured on ALOHA transfer (state env, 40 seeds), a
    policy trained on clean states fell from 87.5% to 70-72% with 9 mm of either on the cube's x, y."""

    entries: tuple[int, ...]
    copies: int = DEFAULT_NOISY_COPIES
    offset: float = DEFAULT_ESTIMATE_NOISE[0]
    jitter: float = DEFAULT_ESTIMATE_NOISE[1]
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 0 or self.offset < 0 or self.jitter < 0:
            raise ValueError(f"noisy copies and noise scales must be >= 0, got copies={self.copies}, "
                             f"offset={self.offset}, jitter={self.jitter}")
        if self.copies and not self.entries:
            raise ValueError("noisy copies need the state entries to add noise to")

    def noisy_copies(self, states: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``copies`` noisy versions of every (T, D) array in ``states``, copy by copy."""
        rng = np.random.default_rng(self.seed)
        entries = list(self.entries)
        out = []
        for _ in range(self.copies):
            for episode in states:
                noisy = np.array(episode, dtype=np.float64)
                noisy[:, entries] += (rng.normal(0.0, self.offset, len(entries))
                                      + rng.normal(0.0, self.jitter, (len(noisy), len(entries))))
                out.append(noisy)
        return out


def noise_options(env: Any, copies: int | None = None, state_noise: Sequence[float] | None = None, *,
                  seed: int = 0) -> dict[str, Any]:
    """:func:`state_trajectories`' ``noise`` for the camera ``env``: noise on the objects'
    positions (``object_position_entries``). ``copies`` None: :data:`DEFAULT_NOISY_COPIES` where
    the env's estimator first locates the objects (:func:`can_recombine`: ALOHA), none elsewhere
    (PushT's block is found to a few board units); 0: none. ``state_noise``: ``(offset, jitter)``
    standard deviations, None: :data:`DEFAULT_ESTIMATE_NOISE`. ``ValueError`` for a negative count,
    a positive count on an env that names no object positions, or a noise scale with no copies."""
    if state_noise is not None:
        if np.ndim(state_noise) != 1 or len(state_noise) != 2:
            raise ValueError(f"the state noise is two numbers, the offset's and the jitter's standard deviations; "
                             f"got {state_noise!r}")
        state_noise = (float(state_noise[0]), float(state_noise[1]))
    if copies is not None and copies < 0:
        raise ValueError(f"the number of noisy copies must be >= 0, got {copies}")
    if copies == 0 or (copies is None and not can_recombine(env)):
        if state_noise is not None:
            raise ValueError("a state noise was given but there are no noisy copies to add it to: give their number "
                             "too (ALOHA's default is 2; PushT's is none)")
        return {}
    entries = getattr(env.unwrapped, "object_position_entries", None)
    if entries is None:
        raise ValueError("noisy copies add noise to the objects' positions, and this env does not name them "
                         "(object_position_entries; ALOHA does): leave the number of noisy copies at its default or 0")
    offset, jitter = state_noise if state_noise is not None else DEFAULT_ESTIMATE_NOISE
    return {"noise": EstimateNoise(tuple(entries), DEFAULT_NOISY_COPIES if copies is None else copies, offset, jitter,
                                   seed)}


def state_trajectories(trajectories: Sequence[Any], states: Sequence[np.ndarray], *,
                       noise: EstimateNoise | None = None) -> list[Any]:
    """The demonstrations with the recorded states as their observations (actions, rewards and
    endings unchanged): train a state policy on them as on a ``state`` dataset. With ``noise``,
    its noisy copies of every episode follow (same actions)."""
    from imitation.data.types import TrajectoryWithRew

    trajectories, states = list(trajectories), [np.asarray(s, np.float64) for s in states]
    if noise is not None:
        states = states + noise.noisy_copies(states)
        trajectories = trajectories * (1 + noise.copies)
    return [TrajectoryWithRew(obs=s, acts=t.acts, infos=None, terminal=t.terminal, rews=t.rews)
            for t, s in zip(trajectories, states)]


def state_errors(estimator: StateEstimator, observations: dict[str, np.ndarray], states: np.ndarray,
                 batch_size: int = 256) -> dict[str, float]:
    """Mean and 90th-percentile absolute error of each estimated entry (neither copied nor unused;
    angles wrapped to [-π, π)), in the state's units: ``{"mae/<i>": ..., "p90/<i>": ...}``."""
    n = len(states)
    estimates = np.concatenate([estimator.estimate(take_rows(observations, np.arange(i, min(i + batch_size, n))))
                                for i in range(0, n, batch_size)])
    error = estimates - states
    angles = [i for i, _ in estimator.config.periodic]
    error[:, angles] = (error[:, angles] + np.pi) % (2 * np.pi) - np.pi
    out: dict[str, float] = {}
    for i in estimator.config.estimated_dims:
        out[f"mae/{i}"] = float(np.mean(np.abs(error[:, i])))
        out[f"p90/{i}"] = float(np.percentile(np.abs(error[:, i]), 90))
    return out


def fit_state_estimator(
    observations: dict[str, np.ndarray],
    states: np.ndarray,
    observation_space: spaces.Space,
    state_space: spaces.Box,
    *,
    steps: int = 3000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    unused: Sequence[int] = (),
    locate: tuple[dict[str, np.ndarray], np.ndarray, Sequence[int]] | None = None,
    locate_steps: int = DEFAULT_LOCATE_STEPS,
    **sizes: Any,
) -> tuple[StateEstimator, FitHistory]:
    """Fit an estimator of ``states`` ``(N, D)`` from flat ``observations`` (``{key: (N, ...)}``,
    see :func:`estimator_data`) for ``steps`` AdamW steps on a cosine schedule; ``unused`` entries
    are not estimated. ``sizes``: :class:`StateEstimatorConfig`'s ``width``, ``keypoints``, ``hidden``, ``stride``.

    ``locate=(frames, frame_states, entries)`` first trains ``locate_steps`` steps on those frames
    alone (e.g. :func:`recombined_frames`) with the loss on ``entries`` only (the objects'
    positions), at a constant learning rate: the keypoints find the objects in the images before
    anything else can stand in for them. Measured on ALOHA transfer from three 48x64 cameras: trained
    on everything from the start, the estimator placed the cube of a fresh reset 55 mm off (the
    spread of the cube's placements: it had not found it); with 2,000 such steps first, 9 mm."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    torch.manual_seed(seed)
    config = estimator_config_for(observation_space, state_space, observations, states, unused, **sizes)
    estimator = StateEstimator(config)
    estimator.fit_statistics(observations, states)
    if locate is not None and locate_steps > 0:
        frames, frame_states, entries = locate
        estimator.output_columns(entries)  # raises for entries not regressed as numbers
        first = GradientStep(lambda obs, state: estimator.loss(obs, state, entries), estimator, estimator.parameters(),
                             learning_rate=learning_rate, weight_decay=1e-4)
        run_training(first, ArrayBatches(frames, frame_states, batch_size, np.random.default_rng(seed + 1)),
                     optimizers=first.optimizers, module=estimator, steps=locate_steps, lr_schedule="constant",
                     keep="last", progress=progress, desc="state estimator: locating the objects")
    step = GradientStep(estimator.loss, estimator, estimator.parameters(), learning_rate=learning_rate, weight_decay=1e-4)
    batches = ArrayBatches(observations, states, batch_size, np.random.default_rng(seed))
    history = run_training(step, batches, optimizers=step.optimizers, module=estimator, steps=steps,
                           lr_schedule="cosine", keep="last", progress=progress, desc="state estimator")
    return estimator, history


def train_estimated_state_policy(
    trajectories: Sequence[Any],
    states: Sequence[np.ndarray],
    state_policy: BasePolicy,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    *,
    state_space: spaces.Box | None = None,
    validation: tuple[Sequence[Any], Sequence[np.ndarray]] | None = None,
    extra_frames: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
    locate: tuple[dict[str, np.ndarray], np.ndarray, Sequence[int]] | None = None,
    **fit: Any,
) -> tuple[EstimatedStatePolicy, dict[str, Any]]:
    """Fit a state estimator on pixel ``trajectories`` and their recorded ``states`` and put it in
    front of ``state_policy`` (trained on the same env's state; its observation space is the
    state's unless ``state_space`` says otherwise). Entries its feature pipeline ignores are not
    estimated. Returns the pixel policy and a report:
    steps, seconds, frames, final loss, and with ``validation`` (held-out episodes and their
    states) the estimator's errors on them (:func:`state_errors`); ``extra_frames`` (from
    :func:`expert_frames`) join the estimator's training frames; so do ``locate``'s
    ``(frames, states, entries)`` (:func:`locating_options`), on which the estimator first learns
    ``entries`` alone (:func:`fit_state_estimator`'s ``locate``). ``fit``:
    :func:`fit_state_estimator`'s options."""
    state_space = state_space if state_space is not None else state_policy.observation_space
    observations, flat_states = estimator_data(trajectories, states)
    for extra_obs, extra_states in [part[:2] for part in (extra_frames, locate) if part is not None]:
        if set(extra_obs) != set(observations):
            raise ValueError(f"extra frames have keys {sorted(extra_obs)}, the demonstrations {sorted(observations)}: "
                             "render them with the demonstrations' env_kwargs")
        observations = {k: np.concatenate([v, extra_obs[k]]) for k, v in observations.items()}
        flat_states = np.concatenate([flat_states, extra_states])
    if locate is not None:  # the locate frames are the last rows: views, not copies
        n = len(locate[1])
        fit["locate"] = ({k: v[-n:] for k, v in observations.items()}, flat_states[-n:], tuple(locate[2]))
    features = getattr(state_policy, "features", None)  # what the state policy never reads need not be estimated
    fit.setdefault("unused", tuple(getattr(features, "ignored_obs", ())))
    start = time.perf_counter()
    estimator, history = fit_state_estimator(observations, flat_states, observation_space, state_space, **fit)
    locate_steps = fit.get("locate_steps", DEFAULT_LOCATE_STEPS) if locate is not None else 0
    report: dict[str, Any] = {"steps": history.steps, "locate_steps": locate_steps, "seconds": time.perf_counter() - start,
                              "frames": len(flat_states), "final_loss": history.final_train_loss}
    if validation is not None and len(validation[0]):
        val_obs, val_states = estimator_data(*validation)
        report["validation"] = {"episodes": len(validation[0]), "frames": len(val_states),
                                **state_errors(estimator, val_obs, val_states)}
    return EstimatedStatePolicy(estimator, state_policy, observation_space, action_space), report


__all__ = ["DEFAULT_LOCATE_STEPS", "DEFAULT_RECOMBINED_FRAMES", "EstimateNoise", "camera_keys", "can_recombine", "estimator_config_for", "estimator_data",
           "expert_frames", "fit_state_estimator", "locating_options", "noise_options", "recombined_frames", "state_errors",
           "state_trajectories", "train_estimated_state_policy"]
