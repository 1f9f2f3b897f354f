"""``variational_flow_matching_policy_trainer``: posterior/prior codes and a mixture of expert
velocity decoders chosen by a gate."""
