"""Online RL on top of imitation-learned policies: PPO fine-tuning (the user guide)."""
