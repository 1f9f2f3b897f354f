"""What one training step of each flow-matching trainer costs on PushT state: the transformer
velocity net (every flow policy before the nets were sized to their inputs) against the MLP one
state-only policies now get, on the same batch, in one run.

Batch: 256 windows of ``n_obs_steps = 2`` states and ``horizon = 16`` actions (the settings the
transformer flow model was benchmarked with), one CPU thread; the transformer sees the raw
5-entry state, the MLP the env's feature pipeline (11 task-frame features), as each would be
trained. A third column times each trainer at what ``il-toolkit train flow`` now trains PushT state
with (MLP velocity net, horizon 1, one observation: ``STATE_DEFAULTS``), the step a user's run
takes. Median ms over 20 steps after 3 warm-up steps.

    .venv/bin/python benchmarks/flow_step_cost.py [--trainers KEY ...]

Writes ``benchmarks/results/flow_step_cost.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

ENV_ID = "il_toolkit/PushT-v0"


def ms_per_step(trainer_key: str, env, velocity_net: str, features, repeats: int = 20, horizon: int = 16,
                n_obs_steps: int = 2) -> tuple[float, int]:
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

    cls = TRAINER_REGISTRY.get(trainer_key)
    policy = FlowMatchingPolicy.create(trainer_key, env.observation_space, env.action_space, features=features,
                                       horizon=horizon, n_obs_steps=n_obs_steps, velocity_net=velocity_net)
    generator = torch.Generator().manual_seed(0)
    batch = {"observation.state": torch.randn(256, n_obs_steps, policy.spec.state_dim, generator=generator),
             "action": torch.randn(256, horizon, policy.spec.action_dim, generator=generator)}
    trainer = cls(policy.model, cls.build_optimizers(policy.model), None, "cpu", generator=generator)
    times = []
    for i in range(3 + repeats):
        start = time.perf_counter()
        trainer.train_step(batch, 0, 1, i)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[3:])), int(sum(p.numel() for p in policy.parameters()))


def main() -> None:
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
    from il_toolkit.train.imitation_learning.defaults import STATE_DEFAULTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", nargs="+", default=[k for k in TRAINER_REGISTRY.keys() if not k.endswith("_depth")])
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_env(ENV_ID)
    rows = []
    for key in args.trainers:
        transformer_ms, transformer_params = ms_per_step(key, env, "transformer", None)
        mlp_ms, mlp_params = ms_per_step(key, env, "mlp", default_state_features(env))
        default_ms, _ = ms_per_step(key, env, "mlp", default_state_features(env), horizon=STATE_DEFAULTS["horizon"],
                                    n_obs_steps=STATE_DEFAULTS["n_obs_steps"])
        rows.append({"trainer": key, "transformer_ms_per_step": round(transformer_ms, 1), "mlp_ms_per_step": round(mlp_ms, 2),
                     "speedup": round(transformer_ms / mlp_ms, 1), "transformer_parameters": transformer_params,
                     "mlp_parameters": mlp_params, "default_ms_per_step": round(default_ms, 2),
                     "speedup_at_defaults": round(transformer_ms / default_ms, 1)})
        print(f"{key:42s} transformer {transformer_ms:7.1f} ms  mlp {mlp_ms:6.2f} ms  {transformer_ms / mlp_ms:5.1f}x  "
              f"train flow's defaults {default_ms:6.2f} ms  {transformer_ms / default_ms:5.1f}x", flush=True)
    env.close()
    write_results("flow_step_cost", {"batch": 256, "n_obs_steps": 2, "horizon": 16, "threads": 1,
                                     "defaults": {k: STATE_DEFAULTS[k] for k in ("horizon", "n_obs_steps")}, "rows": rows})


if __name__ == "__main__":
    main()
