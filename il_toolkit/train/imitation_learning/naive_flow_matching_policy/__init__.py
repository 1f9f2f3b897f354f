"""``naive_flow_matching_policy_trainer``: the plain flow-matching policy."""
