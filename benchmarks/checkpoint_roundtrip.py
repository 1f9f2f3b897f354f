"""A saved BC policy, loaded in a fresh process, acts exactly as before saving, and SB3's
``evaluate_policy`` accepts it.

    .venv/bin/python benchmarks/checkpoint_roundtrip.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _results import write_results

FRESH_PROCESS = """
import json, sys, numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from il_toolkit.envs import make_env
from il_toolkit.policies import load
policy = load(sys.argv[1])
actions, _ = policy.predict(np.load(sys.argv[2]))
np.save(sys.argv[3], actions)
mean, std = evaluate_policy(policy, make_env("CartPole-v1"), n_eval_episodes=20)
print(json.dumps({"sb3_mean_return": mean, "sb3_std_return": std, "policy_class": type(policy).__name__}))
"""


def main() -> None:
    from il_toolkit import BehavioralCloning, ILConfig

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = ILConfig.behavioral_cloning(bc_epochs=20, learning_rate=1e-3, num_expert_episodes=10,
                                             output_dir=str(tmp_path / "bc"), use_wandb=False)
        trainer = BehavioralCloning(env="CartPole-v1", config=config, progress=False)
        results = trainer.train(evaluate_policy=False)
        rng = np.random.default_rng(0)
        # States from the standard range and well outside it, where actions are least certain.
        obs = np.concatenate([rng.uniform(-0.05, 0.05, (1000, 4)), rng.uniform(-1, 1, (1000, 4))]).astype(np.float32)
        np.save(tmp_path / "obs.npy", obs)
        before, _ = trainer.policy.predict(obs)
        out = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, results["policy_path"], str(tmp_path / "obs.npy"), str(tmp_path / "after.npy")],
            capture_output=True, text=True, check=True,
        )
        after = np.load(tmp_path / "after.npy")
        fresh = json.loads(out.stdout.strip().splitlines()[-1])
        files = sorted(p.name for p in Path(results["policy_path"]).iterdir())
    identical = bool(np.array_equal(before, after))
    print(f"checkpoint files: {files}")
    print(f"actions identical after reload in a fresh process: {identical} ({len(obs)} observations)")
    print(f"SB3 evaluate_policy on the reloaded policy: {fresh['sb3_mean_return']:.1f} ± {fresh['sb3_std_return']:.1f} (20 episodes)")
    write_results("checkpoint_roundtrip", {
        "checkpoint_files": files,
        "n_observations": int(len(obs)),
        "actions_identical": identical,
        "loaded_class": fresh["policy_class"],
        "sb3_evaluate_policy": {"mean_return": fresh["sb3_mean_return"], "std_return": fresh["sb3_std_return"], "episodes": 20},
    })


if __name__ == "__main__":
    main()
