"""What one training step of each flow-matching trainer costs on PushT state: the transformer
velocity net (every flow policy before the nets were sized to their inputs) against the MLP one
state-only policies now get, on the same batch, in one run.

Batch: 256 windows of ``n_obs_steps = 2`` states and ``horizon = 16`` actions (the settings the
transformer flow model was benchmarked with), one CPU thread; the transformer sees the raw
5-entry state, the MLP the env's feature pipeline (11 task-frame features), as each would be
trained. A third column times each trainer at what ``il-toolkit train flow`` now trains PushT state
with (MLP velocity net, horizon 1, one observation: ``STATE_DEFAULTS``; the time's sinusoids straight into the
net, ``default_mlp_time_embedding``), the step a user's run
takes; ``--shortcut-steps M`` adds a fourth, the same as a shortcut model (``train flow --shortcut_steps``),
whose self-consistency rows cost two more forward passes each.

The three nets are timed in interleaved blocks (``--blocks`` rounds, each timing every net for
about ``--block-seconds``, in a rotating order), so a change in the machine's load falls on all
three alike; each net's figure is the median of its blocks' ms per step, and the speed-up is the
median of the blocks' own ratios, with their range.

    .venv/bin/python benchmarks/flow_step_cost.py [--trainers KEY ...] [--blocks 9]

Writes ``benchmarks/results/flow_step_cost.json``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
from _flow_options import add_shortcut_options  # noqa: E402

ENV_ID = "il_toolkit/PushT-v0"
BATCH = 256


def make_step(trainer_key: str, env, velocity_net: str, features, horizon: int, n_obs_steps: int,
              **spec_fields) -> tuple[Callable[[], None], int]:
    """One trainer on a fixed random batch: ``(step, parameter count)``; ``step()`` runs one ``train_step``."""
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

    cls = TRAINER_REGISTRY.get(trainer_key)
    policy = FlowMatchingPolicy.create(trainer_key, env.observation_space, env.action_space, features=features,
                                       horizon=horizon, n_obs_steps=n_obs_steps, velocity_net=velocity_net,
                                       **spec_fields)
    generator = torch.Generator().manual_seed(0)
    batch = {"observation.state": torch.randn(BATCH, n_obs_steps, policy.spec.state_dim, generator=generator),
             "action": torch.randn(BATCH, horizon, policy.spec.action_dim, generator=generator)}
    trainer = cls(policy.model, cls.build_optimizers(policy.model), None, "cpu", generator=generator)
    counter = itertools.count()

    def step() -> None:
        trainer.train_step(batch, 0, 1, next(counter))

    return step, int(sum(p.numel() for p in policy.parameters()))


def ms_per_step(step: Callable[[], None], n_steps: int) -> float:
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return 1000 * (time.perf_counter() - start) / n_steps


def interleaved_ms(steps: dict[str, Callable[[], None]], blocks: int, block_seconds: float) -> dict[str, list[float]]:
    """Per net, its ms per step in each of ``blocks`` interleaved blocks (3 warm-up steps, untimed,
    then 3 timed ones set how many steps fill ``block_seconds``, at least one)."""
    names = list(steps)
    for name in names:
        ms_per_step(steps[name], 3)
    n_steps = {name: max(1, int(block_seconds * 1000 / ms_per_step(steps[name], 3))) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        for name in names[block % len(names):] + names[:block % len(names)]:
            times[name].append(ms_per_step(steps[name], n_steps[name]))
    return times


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    ratios = np.asarray(numerator) / np.asarray(denominator)
    return {"median": round(float(np.median(ratios)), 1), "min": round(float(ratios.min()), 1),
            "max": round(float(ratios.max()), 1)}


def main() -> None:
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
    from il_toolkit.train.imitation_learning.defaults import STATE_DEFAULTS, default_mlp_time_embedding

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", nargs="+", default=[k for k in TRAINER_REGISTRY.keys() if not k.endswith("_depth")])
    parser.add_argument("--blocks", type=int, default=9, help="interleaved timing rounds per trainer (default 9)")
    parser.add_argument("--block-seconds", type=float, default=0.5, help="seconds each net runs per block (default 0.5)")
    add_shortcut_options(parser)  # M > 0: also time train flow's defaults as a shortcut model
    parser.add_argument("--name", default="flow_step_cost", help="results file name")
    args = parser.parse_args()
    if args.blocks < 1 or args.block_seconds <= 0:
        parser.error("--blocks must be at least 1 and --block-seconds positive")
    torch.set_num_threads(1)
    env = make_env(ENV_ID)
    features = default_state_features(env)
    default_time = default_mlp_time_embedding(STATE_DEFAULTS["horizon"])
    rows = []
    for key in args.trainers:
        transformer, transformer_params = make_step(key, env, "transformer", None, 16, 2)
        mlp, mlp_params = make_step(key, env, "mlp", features, 16, 2)
        default, _ = make_step(key, env, "mlp", features, STATE_DEFAULTS["horizon"], STATE_DEFAULTS["n_obs_steps"],
                               mlp_time_embedding=default_time)
        nets = {"transformer": transformer, "mlp": mlp, "default": default}
        if args.shortcut_steps:
            nets["shortcut"], _ = make_step(key, env, "mlp", features, STATE_DEFAULTS["horizon"],
                                            STATE_DEFAULTS["n_obs_steps"], mlp_time_embedding=default_time,
                                            shortcut_steps=args.shortcut_steps,
                                            shortcut_fraction=args.shortcut_fraction,
                                            shortcut_ema_decay=args.shortcut_ema_decay)
        times = interleaved_ms(nets, args.blocks, args.block_seconds)
        medians = {name: float(np.median(values)) for name, values in times.items()}
        speedup = ratio_summary(times["transformer"], times["mlp"])
        at_defaults = ratio_summary(times["transformer"], times["default"])
        rows.append({"trainer": key, "transformer_ms_per_step": round(medians["transformer"], 1),
                     "mlp_ms_per_step": round(medians["mlp"], 2), "speedup": speedup["median"],
                     "speedup_range": [speedup["min"], speedup["max"]], "transformer_parameters": transformer_params,
                     "mlp_parameters": mlp_params, "default_ms_per_step": round(medians["default"], 2),
                     "speedup_at_defaults": at_defaults["median"], "speedup_at_defaults_range": [at_defaults["min"], at_defaults["max"]]})
        if args.shortcut_steps:
            cost = ratio_summary(times["shortcut"], times["default"])
            rows[-1].update(shortcut_ms_per_step=round(medians["shortcut"], 2), shortcut_cost=cost["median"],
                            shortcut_cost_range=[cost["min"], cost["max"]])
            print(f"{key:42s} as a shortcut model: {medians['shortcut']:6.2f} ms, {cost['median']:.1f}x the plain step")
        print(f"{key:42s} transformer {medians['transformer']:7.1f} ms  mlp {medians['mlp']:6.2f} ms  "
              f"{speedup['median']:5.1f}x ({speedup['min']}-{speedup['max']})  train flow's defaults "
              f"{medians['default']:6.2f} ms  {at_defaults['median']:5.1f}x ({at_defaults['min']}-{at_defaults['max']})", flush=True)
    env.close()
    write_results(args.name, {"batch": BATCH, "shortcut_steps": args.shortcut_steps,
                              "shortcut_fraction": args.shortcut_fraction if args.shortcut_steps else None,
                              "shortcut_ema_decay": args.shortcut_ema_decay if args.shortcut_steps else None, "n_obs_steps": 2, "horizon": 16, "threads": 1,
                                     "blocks": args.blocks, "block_seconds": args.block_seconds,
                                     "defaults": {**{k: STATE_DEFAULTS[k] for k in ("horizon", "n_obs_steps")},
                                                  "mlp_time_embedding": default_time}, "rows": rows})


if __name__ == "__main__":
    main()
