"""What ``il-toolkit train flow`` trains with where a flag is not given, per kind of env (also used by
library code that trains flow policies the way the command line does)."""

from __future__ import annotations

from typing import Any

# Budgets for a 2-core CPU. State: PushT (200 demonstrations) reaches its plateau in ~6,000 steps of the MLP
# velocity net, about a minute (benchmarks/flow_state.py).
STATE_DEFAULTS = {"steps": 6000, "learning_rate": 1e-3, "horizon": 1, "n_obs_steps": 1, "n_action_steps": 1}
# ALOHA from state, 50 demonstrations, chunks of 16 (8 executed), 50 unseen seeds (benchmarks/flow_state.py, training
# seeds 0 and 1): transfer 60%/44% at 10,000 steps, 90%/76% at 20,000, 98%/100% at 40,000; insertion 66%/58%, 82%/78%,
# 94%/96%. 40,000 steps take 37-48 minutes on one thread.
CHUNK_STEPS = 40000
IMAGE_DEFAULTS = {"steps": 10000, "learning_rate": 3e-4, "horizon": 16, "n_obs_steps": 2, "n_action_steps": 8}
# --estimate_state where the env renders given states: recombined frames, and the estimator's steps on them alone
# first (ALOHA transfer from three 48x64 cameras: see il_toolkit.train.state_estimation.fit_state_estimator).
DEFAULT_RECOMBINED_FRAMES = 6000
DEFAULT_LOCATE_STEPS = 2000
# ... and the state policy trains on the recorded states plus this many copies of each episode whose object positions
# carry an estimate's error: a per-episode offset and a per-frame jitter with these standard deviations (state units;
# ALOHA: metres). ALOHA transfer from three 48x64 cameras, one estimator, 50 unseen seeds: 40% behind a state policy
# trained on clean states (results/pixels_aloha_transfer.json as committed in 5dfb851), 72% behind one trained so, 66%
# with 9 and 6 mm (benchmarks/pixels_estimated_state.py).
DEFAULT_NOISY_COPIES = 2
DEFAULT_ESTIMATE_NOISE = (0.006, 0.005)

# The MLP velocity net's time input (FlowModelSpec.mlp_time_embedding) for a new policy: single actions take the time's
# sinusoids straight into the net (a PushT training step ~13% cheaper; PushT state, 3 training seeds each: per-trainer
# means 97.7-100% against 98.7-99.3% with the time MLP, 96-100% per seed both ways; naive 97.7 / 97 / 100% at
# 1 / 2 / 10 Euler steps against 96 / 95.7 / 99%); chunks keep the time MLP (ALOHA, chunks of 16, seed 0, 200 unseen
# seeds, at 1 / 2 / 10 Euler steps: insertion 18 / 84.5 / 89.5% without it against 41 / 89.5 / 89.5%, transfer
# 20.5 / 91.5 / 95.5% against 44 / 95.5 / 97.5%; benchmarks/flow_state.py --mlp-time-embedding).
def default_mlp_time_embedding(horizon: int) -> str:
    """``"sinusoids"`` for a horizon of 1, ``"sinusoids_mlp"`` for chunks (see the measurements above)."""
    return "sinusoids" if horizon == 1 else "sinusoids_mlp"


def state_policy_spec_fields(settings: dict[str, Any]) -> dict[str, Any]:
    """The spec fields of a state policy trained as ``train flow`` trains one, from :func:`defaults_for`'s
    ``settings``: its chunk, an MLP velocity net, and that net's time input for the horizon."""
    return {"horizon": settings["horizon"], "n_obs_steps": settings["n_obs_steps"], "velocity_net": "mlp",
            "mlp_time_embedding": default_mlp_time_embedding(settings["horizon"])}


DEFAULT_ODE_STEPS = 10  # the ODE a new policy acts with (inference settings: a saved policy can change them)
DEFAULT_SOLVER = "euler"
# Reflow (train flow --reflow, il_toolkit.train.imitation_learning.reflow): noises per training window, and the
# fine-tuning budget of the copy that learns the trained policy's (noise, chunk) pairs. ALOHA insertion's 40,000-step
# policy reflowed for 10,000 steps (one seed; benchmarks/reflow_chunks.py, share of each action dimension's spread):
# at 3e-4 the copy's ten-step chunks lay 0.018 from the policy's map and its two-step ones 0.045 from its own 128-step
# ones, at 1e-3 0.032 and 0.049, and 1e-3 lost 10-11 points of success at two and ten steps where 3e-4 stayed within
# 2.5 (a 3,000-step policy, by contrast, had straightened more at 1e-3).
DEFAULT_NOISES_PER_WINDOW = 4
DEFAULT_REFLOW_STEPS = 10000
DEFAULT_REFLOW_LEARNING_RATE = 3e-4


def defaults_for(env: Any) -> dict[str, Any]:
    """The settings ``train flow`` uses where a flag is not given: :data:`STATE_DEFAULTS` for an env
    whose observation is a flat state vector, :data:`IMAGE_DEFAULTS` otherwise. A state env that
    declares ``action_chunk`` H > 1 (ALOHA: 16) gets chunks of H, half of them executed, one
    observation, and :data:`CHUNK_STEPS` steps."""
    from gymnasium import spaces

    space = env.observation_space
    if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
        return dict(IMAGE_DEFAULTS)
    defaults = dict(STATE_DEFAULTS)
    chunk = int(getattr(env.unwrapped, "action_chunk", 1))
    if chunk > 1:
        defaults.update(horizon=chunk, n_obs_steps=1, n_action_steps=max(1, chunk // 2), steps=CHUNK_STEPS)
    return defaults


__all__ = ["CHUNK_STEPS", "DEFAULT_NOISES_PER_WINDOW", "DEFAULT_ODE_STEPS", "DEFAULT_REFLOW_LEARNING_RATE",
           "DEFAULT_REFLOW_STEPS", "DEFAULT_SOLVER", "IMAGE_DEFAULTS", "STATE_DEFAULTS", "default_mlp_time_embedding",
           "defaults_for", "state_policy_spec_fields"]
