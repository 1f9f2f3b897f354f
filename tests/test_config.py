import pytest

from il_toolkit import ILConfig, RLConfig
from il_toolkit.config.training_config import ConfigError, get_beta

# Every default in the user guide's "Key Hyperparameters" tables and configuration examples.
SEED_DEFAULTS = {
    "bc_epochs": 100,
    "batch_size": 64,
    "learning_rate": 1e-4,
    "bc_validation_split": 0.1,
    "dagger_iterations": 10,
    "dagger_episodes_per_iter": 20,
    "dagger_beta_schedule": "linear",
    "dagger_initial_beta": 1.0,
    "gail_disc_hidden_dim": 256,
    "gail_disc_updates": 5,
    "gail_disc_lr": 3e-4,
    "gail_reward_scale": 1.0,
    "total_timesteps": 100000,
    "weight_decay": 0.01,
    "ppo_epochs": 4,
    "ppo_clip_range": 0.2,
    "ppo_gae_lambda": 0.95,
}


@pytest.mark.parametrize("name,value", sorted(SEED_DEFAULTS.items()))
def test_seed_defaults(name, value):
    assert getattr(ILConfig(), name) == value


def test_presets():
    assert ILConfig.behavioral_cloning().bc_epochs == 100
    assert ILConfig.behavioral_cloning().output_dir == "./output/bc"
    dagger = ILConfig.dagger()
    assert (dagger.bc_epochs, dagger.dagger_iterations, dagger.output_dir) == (20, 10, "./output/dagger")
    gail = ILConfig.gail()
    assert (gail.learning_rate, gail.gail_disc_lr, gail.output_dir) == (3e-4, 3e-4, "./output/gail")
    assert ILConfig.behavioral_cloning(bc_epochs=3).bc_epochs == 3


def test_seed_examples_construct():
    ILConfig(dagger_iterations=10, dagger_episodes_per_iter=20, dagger_beta_schedule="linear",
             dagger_initial_beta=1.0, bc_epochs=20, batch_size=64, learning_rate=1e-4, output_dir="./output/dagger")
    ILConfig(gail_disc_hidden_dim=256, gail_disc_updates=5, gail_disc_lr=3e-4, gail_reward_scale=1.0,
             ppo_epochs=4, ppo_clip_range=0.2, ppo_gae_lambda=0.95, learning_rate=3e-4, batch_size=64)
    ILConfig(action_chunk_size=10, temporal_aggregation=True)
    RLConfig(total_timesteps=100000, learning_rate=1e-5)


def test_unknown_beta_schedule_lists_allowed_values():
    with pytest.raises(ConfigError, match="constant, linear, exponential; got 'cosine'"):
        ILConfig(dagger_beta_schedule="cosine")


@pytest.mark.parametrize("bad", [
    {"learning_rate": -1e-4}, {"learning_rate": 0.0}, {"batch_size": 0}, {"bc_validation_split": 1.0},
    {"dagger_initial_beta": 1.5}, {"bc_epochs": 2.5}, {"gail_disc_updates": -1}, {"learning_rate": float("nan")},
    {"lr_schedule": "step"}, {"policy_activation": "elu"}, {"drop_velocity_obs": "yes"}, {"task_frame": 1},
])
def test_invalid_values_are_refused_with_the_field_named(bad):
    (name,) = bad
    with pytest.raises(ConfigError, match=name):
        ILConfig(**bad)


def test_round_trip_and_unknown_fields(tmp_path):
    config = ILConfig.dagger(seed=3)
    assert ILConfig.load(config.save(tmp_path / "c.json")) == config
    with pytest.raises(ConfigError, match="unknown ILConfig fields \\['bc_epoch'\\]"):
        ILConfig.from_dict({"bc_epoch": 3})


def test_beta_schedules_match_the_seed():
    assert [get_beta(i, "constant", 0.7, 10) for i in (0, 5)] == [0.7, 0.7]
    assert [get_beta(i, "linear", 1.0, 10) for i in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0.0]
    assert get_beta(3, "exponential", 1.0, 10) == pytest.approx(0.9**3)
    with pytest.raises(ConfigError):
        get_beta(0, "cosine", 1.0, 10)


def test_gail_warm_starts_with_bc_from_the_preset_and_from_a_bare_config():
    assert ILConfig.gail().gail_bc_warm_start_epochs == 20
    assert ILConfig(gail_disc_hidden_dim=256).gail_bc_warm_start_epochs == 20  # the user guide's Python example


@pytest.mark.parametrize("seed", [-1, 100, 10**6])
def test_seeds_that_would_reach_evaluation_starts_are_refused(seed):
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 100\)"):
        ILConfig(seed=seed)
