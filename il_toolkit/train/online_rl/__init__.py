"""Online RL on top of imitation-learned policies: PPO fine-tuning (seed 004)."""
