"""Fingerprints of what the toolkit's training produces, to show a refactor of the training code
changed nothing: a sha256 over every weight after a handful of small, seeded fits through the
public API. Run it before and after a change (same machine, same torch): equal fingerprints mean
the same weights bit for bit, so every result measured before still holds.

Fits: BC (MLP learner, onecycle and constant schedules) and BC with the flow learner on 6 PushT
expert demonstrations; three flow trainers with checkpoints; DAgger on CartPole for 2 rounds; a
tiny VLA trained by VLA BC with a validation loader. About 10 s.

    .venv/bin/python benchmarks/training_parity.py [--compare results/training_parity.json]

Writes ``benchmarks/results/training_parity.json``; ``--compare FILE`` also prints which
fingerprints differ from FILE's and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

FLOW_TRAINERS = ("naive_flow_matching_policy_trainer", "vfp_single_expert_trainer", "cfg_vqvae_flow_matching_trainer_kot")


def fingerprint(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def fits(out: Path) -> dict[str, str]:
    from il_toolkit import DAgger, ILConfig
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.rollout import rollout_episode
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning
    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    prints: dict[str, str] = {}
    env = make_env("il_toolkit/PushT-v0")
    expert = make_expert("il_toolkit/PushT-v0", env=env)
    demos = [rollout_episode(expert, env, seed).to_trajectory() for seed in range(6)]
    for schedule in ("onecycle", "constant"):
        config = ILConfig(output_dir=str(out / f"bc_{schedule}"), use_wandb=False, bc_epochs=3, lr_schedule=schedule,
                          seed=0, eval_episodes=1, policy_type="mlp")
        bc = BehavioralCloning("il_toolkit/PushT-v0", config, progress=False)
        bc.train(trajectories=demos, evaluate_policy=False)
        prints[f"bc_mlp_{schedule}"] = fingerprint(bc.module)
    config = ILConfig(output_dir=str(out / "bc_flow"), use_wandb=False, bc_epochs=2, policy_type="flow", seed=0,
                      batch_size=64)
    bc = BehavioralCloning("il_toolkit/PushT-v0", config, progress=False)
    bc.train(trajectories=demos, evaluate_policy=False)
    prints["bc_flow"] = fingerprint(bc.module)
    for key in FLOW_TRAINERS:
        policy = train_flow_policy(key, demos, env.observation_space, env.action_space, steps=60, batch_size=64, seed=1,
                                   features=default_state_features(env), checkpoint_dir=out / key, checkpoint_every=25)
        prints[f"flow_{key}"] = fingerprint(policy.model)
    config = ILConfig(output_dir=str(out / "dagger"), use_wandb=False, bc_epochs=2, dagger_iterations=2,
                      dagger_episodes_per_iter=1, seed=0, eval_episodes=1)
    dagger = DAgger("CartPole-v1", config=config, progress=False)
    dagger.train()
    prints["dagger_cartpole"] = fingerprint(dagger.bc.module)
    prints["vla_bc"] = vla_fit(out)
    return prints


def vla_fit(out: Path) -> str:
    from il_toolkit import ILConfig
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.train.il.vla import VLABehavioralCloning

    torch.manual_seed(0)
    model = VLAModel("builtin-small", "builtin-small", action_dim=2, state_dim=2, chunk_size=4, hidden_size=32,
                     llm_layers=1, n_heads=2, vision_grid=2, vision_width=8, head_dim=32, head_layers=1,
                     action_head="regression")
    config = ILConfig.behavioral_cloning(bc_epochs=3, learning_rate=3e-3, output_dir=str(out / "vla"), seed=0)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, progress=False)
    trainer.train(batches(4, seed=0), batches(2, seed=5))
    return fingerprint(model.model)


def batches(n: int, seed: int) -> list[dict]:
    """Synthetic LeRobot-style batches: actions a smooth function of the state."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        state = rng.uniform(-1, 1, (16, 1, 2)).astype(np.float32)
        images = rng.integers(0, 255, (16, 1, 3, 32, 32), dtype=np.uint8)
        action = np.repeat(np.tanh(state), 4, axis=1).astype(np.float32)
        out.append({"observation.state": torch.as_tensor(state), "observation.images.top": torch.as_tensor(images),
                    "action": torch.as_tensor(action), "task": "push the T block onto the target"})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="a results file from before the change")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        prints = fits(Path(tmp))
    for name, value in prints.items():
        print(f"{name:45s} {value}")
    figures: dict = {"fingerprints": prints, "torch_threads": 1}
    changed: list[str] = []
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = sorted(k for k in prints if before["fingerprints"].get(k) != prints[k])
        figures["compared_with"] = {"git_revision": before.get("environment", {}).get("git_revision"),
                                    "changed": changed}
        print(f"identical to {args.compare}" if not changed else f"changed: {', '.join(changed)}")
    write_results("training_parity", figures)
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
