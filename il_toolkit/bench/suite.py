"""Suites as data: ``NAME.toml`` (shipped in ``il_toolkit/bench/suites/``, or any path) parsed,
validated and expanded into trials.

A suite file::

    name = "quick"
    description = "CartPole and PushT (state), every method"
    seeds = [0, 1]                  # training seeds (each also picks its demonstration starts)
    eval_episodes = 20              # per trial, on seeds eval_seed, eval_seed + 1, ...
    eval_seed = 1000000

    [[tasks]]
    env = "CartPole-v1"
    demos = [2, 10]                 # demonstration budgets (expert episodes)
    score = "sum_reward"            # the per-episode figure normalised (expert = 1, random = 0)
    methods = "all"                 # or a list; "all" = every registered method that fits the env
    [tasks.budgets]                 # training budgets per method: a list of ILConfig overrides
    bc = [{ bc_epochs = 30 }]
    gail = [{ name = "16k", total_timesteps = 16384 }]

A task may override ``seeds`` and ``eval_episodes``, and pick an ``obs_type`` the env offers
(``"pixels"``, ``"pixels_agent_pos"``; default: the env's own, state for every toolkit env). A method without budgets runs once with
its preset's defaults. Everything is checked by :func:`load_suite` before any work starts;
every problem found is reported at once, with the known names.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SCORE_FIELDS = ("sum_reward", "max_reward")
SUITE_KEYS = {"name", "description", "seeds", "eval_episodes", "eval_seed", "tasks"}
TASK_KEYS = {"env", "obs_type", "demos", "score", "methods", "budgets", "seeds", "eval_episodes", "expert"}
DEFAULT_EVAL_SEED = 1_000_000
SUITES_DIR = Path(__file__).resolve().parent / "suites"  # shipped with the package (package data)


class SuiteError(ValueError):
    """A suite file that cannot run; the message lists every problem and the known names."""


@dataclass(frozen=True)
class Trial:
    """One cell of a suite: train ``method`` on ``n_demos`` expert episodes of ``env_id`` with
    ``budget`` and training seed ``seed``, then evaluate on ``eval_episodes`` seeds from ``eval_seed``."""

    suite: str
    env_id: str
    method: str
    seed: int
    n_demos: int
    budget_name: str
    budget: dict[str, Any] = field(hash=False, compare=False)
    eval_episodes: int = 20
    eval_seed: int = DEFAULT_EVAL_SEED
    score: str = "sum_reward"
    obs_type: str | None = None  # None: the env's registered default

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {} if self.obs_type is None else {"obs_type": self.obs_type}

    @property
    def task(self) -> str:
        """The env id, plus the observation type when it is not the default."""
        return self.env_id if self.obs_type is None else f"{self.env_id} ({self.obs_type})"

    @property
    def key(self) -> str:
        """Identifies the trial's *content* (not the suite it came from): two suites that
        contain the same trial share its result."""
        fields = [self.env_id, self.method, self.seed, self.n_demos, self.budget, self.eval_episodes, self.eval_seed]
        if self.obs_type is not None:
            fields.append(self.obs_type)
        digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
        env = self.env_id if self.obs_type is None else f"{self.env_id}:{self.obs_type}"
        return f"{env}|{self.method}|d{self.n_demos}|s{self.seed}|{self.budget_name}|{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite, "env_id": self.env_id, "method": self.method, "seed": self.seed,
            "n_demos": self.n_demos, "budget_name": self.budget_name, "budget": dict(self.budget),
            "eval_episodes": self.eval_episodes, "eval_seed": self.eval_seed, "score": self.score,
            "obs_type": self.obs_type,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        return cls(**data)


@dataclass(frozen=True)
class Task:
    env_id: str
    demos: tuple[int, ...]
    score: str
    methods: tuple[str, ...]
    budgets: dict[str, tuple[tuple[str, dict[str, Any]], ...]]
    seeds: tuple[int, ...]
    eval_episodes: int
    skipped_methods: tuple[str, ...] = ()  # "all" left these out: they cannot act in this env
    obs_type: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: str
    eval_seed: int
    tasks: tuple[Task, ...]

    def trials(self) -> list[Trial]:
        """Every trial, tasks in file order, then method, demonstration budget, training budget, seed."""
        out = []
        for task in self.tasks:
            for method in task.methods:
                for n_demos in task.demos:
                    for budget_name, budget in task.budgets[method]:
                        for seed in task.seeds:
                            out.append(Trial(self.name, task.env_id, method, seed, n_demos, budget_name, dict(budget),
                                             task.eval_episodes, self.eval_seed, task.score, task.obs_type))
        return out


def available_suites(directory: Path = SUITES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


def resolve_suite_path(name_or_path: str) -> Path:
    """A suite file path, or the name of a suite shipped with the package (:data:`SUITES_DIR`)."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise SuiteError(f"suite file {name_or_path!r} does not exist")
        return candidate
    path = SUITES_DIR / f"{name_or_path}.toml"
    if path.is_file():
        return path
    raise SuiteError(f"unknown suite {name_or_path!r}; known suites: {', '.join(available_suites()) or '(none)'} "
                     f"(or give the path of a .toml file)")


def load_suite(name_or_path: str, *, check_envs: bool = True) -> Suite:
    """Parse and validate a suite; raise :class:`SuiteError` listing every problem.

    ``check_envs`` makes each env once to read its action space (which methods fit it).
    """
    path = resolve_suite_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML ({exc})") from exc
    return parse_suite(data, source=str(path), check_envs=check_envs)


def parse_suite(data: dict[str, Any], *, source: str = "<suite>", check_envs: bool = True) -> Suite:
    problems: list[str] = []
    _unknown_keys(problems, "suite", data, SUITE_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        problems.append("'name' must be a non-empty string")
        name = "unnamed"
    seeds = _int_list(problems, "seeds", data.get("seeds", [0]), minimum=0)
    eval_episodes = _positive_int(problems, "eval_episodes", data.get("eval_episodes", 20))
    eval_seed = data.get("eval_seed", DEFAULT_EVAL_SEED)
    if not isinstance(eval_seed, int) or isinstance(eval_seed, bool) or eval_seed < 0:
        problems.append(f"'eval_seed' must be an integer >= 0, got {eval_seed!r}")
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, list) or not tasks_data:
        problems.append("a suite needs at least one [[tasks]] table")
        tasks_data = []
    tasks = []
    for index, task_data in enumerate(tasks_data):
        task = _parse_task(problems, index, task_data, seeds, eval_episodes, check_envs)
        if task is not None:
            tasks.append(task)
    if problems:
        raise SuiteError(f"{source}: the suite cannot run:\n" + "\n".join(f"  - {p}" for p in problems))
    return Suite(name, str(data.get("description", "")), source, int(eval_seed), tuple(tasks))


# -- parts ---------------------------------------------------------------------------------
def _parse_task(problems: list[str], index: int, data: Any, seeds: tuple[int, ...], eval_episodes: int,
                check_envs: bool) -> Task | None:
    from il_toolkit.bench.methods import METHOD_REGISTRY

    where = f"tasks[{index}]"
    if not isinstance(data, dict):
        problems.append(f"{where} must be a table")
        return None
    _unknown_keys(problems, where, data, TASK_KEYS)
    env_id = _check_env(problems, where, data.get("env"))
    obs_type = data.get("obs_type")
    if env_id is not None:
        where = f"{where} ({env_id})"
        obs_type = _check_obs_type(problems, where, env_id, obs_type)
    demos = _int_list(problems, f"{where}.demos", data.get("demos", [10]), minimum=1)
    score = data.get("score", "sum_reward")
    if score not in SCORE_FIELDS:
        problems.append(f"{where}.score must be one of {', '.join(SCORE_FIELDS)}, got {score!r}")
    task_seeds = _int_list(problems, f"{where}.seeds", data["seeds"], minimum=0) if "seeds" in data else seeds
    task_eval = _positive_int(problems, f"{where}.eval_episodes", data.get("eval_episodes", eval_episodes))
    if "expert" in data and data["expert"] != "default":
        problems.append(f"{where}.expert: only the env's default expert is supported by the harness, got {data['expert']!r}")
    kinds = _space_kinds(problems, where, env_id, obs_type) if (check_envs and env_id is not None) else None

    def fits(method: str) -> bool:
        meta = METHOD_REGISTRY.metadata(method)
        return kinds is None or (kinds[0] in meta["action_spaces"] and kinds[1] in meta["observations"])

    requested = data.get("methods", "all")
    skipped: list[str] = []
    if requested == "all":
        methods = [m for m in METHOD_REGISTRY.keys() if fits(m)]
        skipped = [m for m in METHOD_REGISTRY.keys() if m not in methods]
    elif isinstance(requested, list) and requested and all(isinstance(m, str) for m in requested):
        methods = []
        for method in requested:
            if method not in METHOD_REGISTRY:
                problems.append(f"{where}: unknown method {method!r}; known methods: {', '.join(METHOD_REGISTRY.keys())}")
            elif not fits(method):
                assert kinds is not None
                problems.append(f"{where}: method {method!r} cannot learn {kinds[0]} actions from {kinds[1]} observations; "
                                f"methods for this env: {', '.join(m for m in METHOD_REGISTRY.keys() if fits(m)) or '(none)'}")
            elif method in methods:
                problems.append(f"{where}: method {method!r} is listed twice")
            else:
                methods.append(method)
    else:
        problems.append(f"{where}.methods must be \"all\" or a non-empty list of method names, got {requested!r}")
        methods = []

    budgets_data = data.get("budgets", {})
    if not isinstance(budgets_data, dict):
        problems.append(f"{where}.budgets must be a table of method = [budget tables]")
        budgets_data = {}
    for method in budgets_data:
        if method not in methods:
            if method not in METHOD_REGISTRY:
                problems.append(f"{where}.budgets: unknown method {method!r}; known methods: "
                                f"{', '.join(METHOD_REGISTRY.keys())}")
            elif method not in skipped:
                problems.append(f"{where}.budgets.{method}: the method is not in this task's methods")
    budgets = {m: _parse_budgets(problems, f"{where}.budgets.{m}", m, budgets_data.get(m, [{}])) for m in methods}
    if env_id is None:
        return None
    return Task(env_id, demos, score, tuple(methods), budgets, task_seeds, task_eval, tuple(skipped), obs_type)


def _parse_budgets(problems: list[str], where: str, method: str, data: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    from il_toolkit.bench.methods import METHOD_REGISTRY
    from il_toolkit.config.training_config import ConfigError, ILConfig

    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(b, dict) for b in data):
        problems.append(f"{where} must be a list of tables, e.g. [{{ bc_epochs = 20 }}]")
        return ()
    config_fields = set(ILConfig.__dataclass_fields__)
    extra = set(METHOD_REGISTRY.metadata(method)["extra_budget_keys"])
    fixed = {"seed", "output_dir", "use_wandb"}  # the harness sets these
    out: list[tuple[str, dict[str, Any]]] = []
    for i, raw in enumerate(data):
        budget = {k: v for k, v in raw.items() if k != "name"}
        unknown = sorted(set(budget) - config_fields - extra)
        if unknown:
            problems.append(f"{where}[{i}]: unknown budget keys {unknown}; known: ILConfig fields "
                            f"({', '.join(sorted(config_fields - fixed))})" + (f" and {', '.join(sorted(extra))}" if extra else ""))
            continue
        if set(budget) & fixed:
            problems.append(f"{where}[{i}]: {sorted(set(budget) & fixed)} are set by the harness (use the suite's seeds)")
            continue
        try:
            ILConfig(**{k: v for k, v in budget.items() if k in config_fields})
        except (ConfigError, TypeError) as exc:
            problems.append(f"{where}[{i}]: {exc}")
            continue
        if "flow_trainer" in budget:
            from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

            if budget["flow_trainer"] not in TRAINER_REGISTRY:
                problems.append(f"{where}[{i}]: unknown flow_trainer {budget['flow_trainer']!r}; known: "
                                f"{', '.join(TRAINER_REGISTRY.keys())}")
                continue
        name = raw.get("name") or ",".join(f"{k}={budget[k]}" for k in sorted(budget)) or "default"
        if any(name == n for n, _ in out):
            problems.append(f"{where}[{i}]: budget name {name!r} is used twice")
            continue
        out.append((str(name), budget))
    return tuple(out)


def _check_env(problems: list[str], where: str, env: Any) -> str | None:
    from il_toolkit.envs import canonical_env_id
    from il_toolkit.envs.registration import UnknownEnvError, toolkit_env_ids
    from il_toolkit.experts import DEFAULT_EXPERTS

    benchmarkable = ", ".join(e for e in toolkit_env_ids() if e in DEFAULT_EXPERTS)  # they need an expert
    if not isinstance(env, str) or not env:
        problems.append(f"{where}.env must be an env id; known envs: {benchmarkable}")
        return None
    try:
        canonical = canonical_env_id(env)
    except UnknownEnvError:
        problems.append(f"{where}: unknown env {env!r}; known envs: {benchmarkable}")
        return None
    if canonical not in DEFAULT_EXPERTS:
        problems.append(f"{where}: env {env!r} has no registered expert to demonstrate it; envs with experts: "
                        f"{', '.join(sorted(DEFAULT_EXPERTS))}")
        return None
    return canonical


def _check_obs_type(problems: list[str], where: str, env_id: str, obs_type: Any) -> str | None:
    from il_toolkit.envs.registration import env_entry

    if obs_type is None:
        return None
    entry = env_entry(env_id)
    offered = entry.obs_types if entry is not None else ()
    if obs_type not in offered:
        problems.append(f"{where}.obs_type {obs_type!r} is not offered by {env_id}; it offers: {', '.join(offered) or '(none)'}")
        return None
    return None if entry is not None and obs_type == entry.kwargs.get("obs_type") else obs_type


def _space_kinds(problems: list[str], where: str, env_id: str, obs_type: str | None) -> tuple[str, str] | None:
    """``(action kind, observation kind)`` of the env, made once."""
    from il_toolkit.bench.methods import action_space_kind, observation_kind
    from il_toolkit.envs import make_env

    try:
        env = make_env(env_id, **({} if obs_type is None else {"obs_type": obs_type}))
    except Exception as exc:  # a missing system library, a broken install
        problems.append(f"{where}: the env cannot be made ({type(exc).__name__}: {exc})")
        return None
    try:
        return action_space_kind(env.action_space), observation_kind(env.observation_space, env)
    finally:
        env.close()


def _unknown_keys(problems: list[str], where: str, data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}; known keys: {', '.join(sorted(known))}")


def _positive_int(problems: list[str], where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"'{where}' must be a positive integer, got {value!r}")
        return 1
    return value


def _int_list(problems: list[str], where: str, value: Any, *, minimum: int) -> tuple[int, ...]:
    ok = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                                  for v in value)
    if not ok:
        problems.append(f"'{where}' must be a non-empty list of integers >= {minimum}, got {value!r}")
        return (minimum,)
    if len(set(value)) != len(value):
        problems.append(f"'{where}' lists a value twice: {value!r}")
    return tuple(value)


def describe(suite: Suite, trials: Iterable[Trial] | None = None) -> str:
    """A few lines saying what the suite will run."""
    trials = list(trials if trials is not None else suite.trials())
    lines = [f"suite {suite.name!r} ({suite.path}): {len(trials)} trials"]
    for task in suite.tasks:
        n = sum(1 for t in trials if t.env_id == task.env_id and t.obs_type == task.obs_type)
        skipped = f"; not applicable: {', '.join(task.skipped_methods)}" if task.skipped_methods else ""
        label = task.env_id if task.obs_type is None else f"{task.env_id} ({task.obs_type})"
        lines.append(f"  {label}: methods {', '.join(task.methods)}; demos {list(task.demos)}; seeds "
                     f"{list(task.seeds)}; {task.eval_episodes} eval episodes; {n} trials{skipped}")
    return "\n".join(lines)
