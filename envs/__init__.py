"""Environment-centric wrappers and their gymnasium registration (installed as ``il_toolkit.envs``).

Importing this package registers the ids; the simulators are imported only when an env is made.
"""

from il_toolkit.envs.registration import (
    ALIASES,
    ENVIRONMENTS,
    EnvEntry,
    UnknownEnvError,
    canonical_env_id,
    env_entry,
    make_env,
    register_envs,
    toolkit_env_ids,
)

register_envs()

__all__ = [
    "ALIASES",
    "ENVIRONMENTS",
    "EnvEntry",
    "UnknownEnvError",
    "canonical_env_id",
    "env_entry",
    "make_env",
    "register_envs",
    "toolkit_env_ids",
]
