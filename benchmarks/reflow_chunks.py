"""What reflow changed: a reflowed policy's chunks against its teacher's, from the same noise on the same
demonstration windows.

Reflow (Liu et al. 2023; ``il-toolkit train flow --model_path TEACHER --reflow``,
``flow_state.py --reflow-from DIR``) fine-tunes a copy of a flow policy on the (noise, chunk) pairs of the
teacher's own ODE, so that its paths straighten and few Euler steps land where many do. Two things decide
whether that pays: how much straighter the student's paths are (its few-step chunks against its own many-step
chunks, beside the teacher's) and how faithfully it learnt the teacher's map (its chunks against the
teacher's at the teacher's own step count, the pairs' step count). Public API only (``load``, ``WindowDataset``,
``predict_chunk``); one CPU thread. The windows are training windows; the noise is not the pairs'.

    .venv/bin/python benchmarks/reflow_chunks.py --env aloha_insertion \\
        --teacher DIR/naive_flow_matching_policy_trainer-s0 --student DIR2/naive_flow_matching_policy_trainer-s0

Writes ``benchmarks/results/reflow_chunks_<env>.json`` (``--name``); differences are root-mean-square over
states, chunk positions and action dimensions, overall and as a share of each dimension's spread (as in
``shortcut_chunks.py``, whose helpers this uses), with the spread of the teacher's reference chunks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
from flow_state import ENVS, expert_demonstrations  # noqa: E402
from shortcut_chunks import chunks, demonstration_windows, difference  # noqa: E402

NOISE_SEED = 1000  # not reflow's pair seeds (0, 1 by default): the student never trained on these noises


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True, help="the flow checkpoint that was reflowed")
    parser.add_argument("--student", type=Path, required=True, help="the reflowed checkpoint")
    parser.add_argument("--env", default="aloha_insertion", choices=sorted(ENVS))
    parser.add_argument("--demos", type=int, default=None, help="the dataset's episodes (default: flow_state.py's)")
    parser.add_argument("--states", type=int, default=512, help="demonstration states drawn (seed 0)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 5, 10], help="Euler step counts compared")
    parser.add_argument("--reference-steps", type=int, default=128, help="Euler steps of each policy's own reference")
    parser.add_argument("--name", default=None, help="results file name (default reflow_chunks_<env>)")
    args = parser.parse_args()
    if args.states < 2 or args.reference_steps < 1 or min(args.steps) < 1:
        parser.error("--states must be >= 2 and step counts >= 1")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    from il_toolkit.policies import load

    teacher, student = load(args.teacher), load(args.student)
    if student.spec != teacher.spec:
        raise SystemExit(f"{args.student} is not a reflow of {args.teacher}: their architectures differ")
    for name, policy in (("teacher", teacher), ("student", student)):
        if policy.solver != "euler" or policy.spec.shortcut_steps:
            raise SystemExit(f"the {name} {getattr(args, name)} is not a plain flow model integrated with Euler steps, "
                             "which is what this benchmark compares")
    env_id = ENVS[args.env][0]
    dataset, demos = expert_demonstrations(args.env, args.demos)
    window = demonstration_windows(teacher, demos, args.states)

    def chunk_of(policy, n_steps: int, noise_seed: int = NOISE_SEED) -> np.ndarray:
        return chunks(policy, window, n_steps, None, dict(policy.inference_options), noise_seed)

    teacher_map = chunk_of(teacher, teacher.n_steps)  # what the pairs held: the teacher's own ODE
    spread = np.maximum(chunk_of(teacher, args.reference_steps).reshape(-1, teacher_map.shape[-1]).std(axis=0), 1e-8)
    figures = {}
    print(f"on {args.states} states of {dataset}, rms difference as a share of the spread:")
    for name, policy in (("teacher", teacher), ("student", student)):
        own = chunk_of(policy, args.reference_steps)
        figures[name] = {
            "vs_own_reference": {n: difference(chunk_of(policy, n), own, spread) for n in args.steps},
            "vs_teacher_map": {n: difference(chunk_of(policy, n), teacher_map, spread) for n in args.steps},
            "reference_from_other_noise": difference(chunk_of(policy, args.reference_steps, NOISE_SEED + 1), own, spread),
        }
        share = lambda key: "  ".join(f"{n}: {figures[name][key][n]['rms_share_of_spread']:.3f}" for n in args.steps)
        print(f"  {name}: vs its own {args.reference_steps} steps  {share('vs_own_reference')}")
        print(f"  {name}: vs the teacher's {teacher.n_steps} steps  {share('vs_teacher_map')}")
    write_results(args.name or f"reflow_chunks_{args.env}", {
        "settings": {"teacher": str(args.teacher), "student": str(args.student), "env_id": env_id, "dataset": dataset,
                     "states": args.states, "reference_steps": args.reference_steps, "teacher_steps": teacher.n_steps,
                     "noise_seed": NOISE_SEED,
                     "spread_per_dimension": np.round(spread, 5).tolist()},
        **figures,
    })


if __name__ == "__main__":
    main()
