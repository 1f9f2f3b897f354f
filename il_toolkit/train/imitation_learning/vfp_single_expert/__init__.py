"""``vfp_single_expert_trainer`` and ``vfp_single_expert_trainer_depth``: single-expert VFP."""
