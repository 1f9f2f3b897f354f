"""DAgger (dataset aggregation, Ross et al. 2011) and its interactive variants; it owns a BC trainer.

``dagger_variant`` picks who acts and who labels in each round (the gates are in
:mod:`il_toolkit.train.il.gates`, the rollout in :mod:`il_toolkit.train.il.interactive`):

- ``dagger``: the beta mixture below; the expert labels every visited state.
- ``hg_dagger`` (Kelly et al. 2019): the learner acts; a person at the controls (a
  ``HumanExpert``) or a model of one (:class:`~il_toolkit.train.il.gates.SimulatedPerson`) takes over
  where it strays and labels only the states they act in.
- ``ensemble_dagger`` (Menda et al. 2019): ``dagger_ensemble_size`` learners (an
  :class:`~il_toolkit.policies.ensemble.EnsemblePolicy`); the expert acts where they disagree or the
  state lies far from the training data.
- ``thrifty_dagger`` (Hoque et al. 2021): the expert acts where the ensemble disagrees or a risk
  model, fitted to the learner's own failures, says it is likely to fail; it hands back once the
  learner agrees with it again.

The ensemble variants set their thresholds each round so that ``dagger_target_query_rate`` of the
states the learner drove to in the round before would have gone to the expert. Every round records
what it cost the expert (:class:`~il_toolkit.train.il.interactive.LabelAccount`: labels, queries,
interventions, hand-backs, the expert's share of the steps); only labelled stretches of the
episodes are aggregated, and ``dagger_label_budget`` counts labels whatever the variant.

Each round ``i`` of ``dagger_iterations``: act in the env for ``dagger_episodes_per_iter``
episodes with the expert at each step with probability ``beta_i`` (else the learner), label
*every* visited state with the expert's action, aggregate, and retrain the learner with BC
for ``bc_epochs``: a freshly initialised learner of the same architecture, as Ross et al. do
(``dagger_warm_start`` continues from the last round's weights instead, as imitation's
``SimpleDAggerTrainer`` does; warm-started networks generalise worse). A chunked learner
(``action_chunk_size > 1``) is a flow policy trained afresh on the aggregate (continued, with
``dagger_warm_start``). Its targets are chunks: where the env can save and restore its
simulation (ALOHA), the expert's own next actions from each state where the learner plans,
acted out in a branch of the simulation that is then undone (each of them a label;
:mod:`il_toolkit.train.il.expert_chunks`); elsewhere, or with ``dagger_chunk_labels="visited"``,
the expert's labels of the states that follow. Given an initial dataset D0 (``--dataset``), a
fresh learner is fitted on it before round 1, so round 1's learner acts as BC on D0. Beta
schedules (the user guide): constant ``beta0``, linear ``max(0, beta0 * (1 - i/N))``, exponential
``beta0 * 0.9**i``.

Python::

    trainer = DAgger(env=gym.make("CartPole-v1"), expert_policy=expert_policy, config=ILConfig.dagger())
    results = trainer.train()

Command line::

    python -m il_toolkit.train.il.dagger --env CartPole-v1 --dagger_iterations 10 \
        --dagger_episodes_per_iter 20 --dagger_beta_schedule linear --dagger_initial_beta 1.0 \
        --bc_epochs 20 --output_dir ./output/dagger

Each round's weights are, by default (``keep_weights="auto"``), those of its last epoch, not of its
lowest validation loss: the
validation episodes hold learner-visited states whose expert labels no network predicts from
the other episodes, so validation loss bottoms out a few epochs in (ALOHA transfer, round 1:
at epoch 4 of 50, whose training loss was 13x the last epoch's; the policy kept from it
succeeded in 0 of 20 rollouts, a fit on the same data kept at its last epoch in 25 of 40), and
keeping that epoch throws the round's training away. ``keep_weights="best"`` keeps it anyway.
Rounds are compared by rollouts instead (:meth:`DAgger.best_round`).

A learner can stop at a fixed point of its own action map (PushT: it aims where the pusher
already is), or cycle through a few states (PushT: approach a contact, back off, approach), and
would then label those states for the rest of the episode: 41% of the labels of a PushT run came
from states identical to the step before, and in another, failed rollouts repeated states of the
last 20 steps for their final 100. With ``dagger_stuck_steps`` a rollout whose every observation
for that many steps repeated one of the 20 before it (:class:`StuckDetector`) ends there
(``dagger_on_stuck="end"``), or the expert acts for the rest of it (``"expert"``; the round's
``round/pc_success`` then counts the episodes it finished). ``round/stuck_episodes`` counts them.

``dagger_label_budget`` holds DAgger to a number of expert labels, the initial dataset's
included (say, those of the BC run it is compared with): the rollout that reaches it is cut
there and no later round starts.

Everything a run learns lands in ``output_dir`` as it goes: each round's labelled episodes
are appended to a Minari dataset at ``output_dir/dataset/data`` (open it with
``minari.MinariDataset(path)``), each round's policy is saved under ``rounds/NNN`` and judged
by 20 rollouts of its own, and ``state.json`` records the finished rounds last. At the end
``best/`` holds the round policy that did best in those rollouts (:meth:`DAgger.best_round`)
and ``last/`` the final round's; the final evaluation is of ``best/``. Rerunning the same
command after a crash or Ctrl-C resumes after the last finished round; a round that was cut
short is redone. Resumed with another ``dagger_iterations``, a run stops after that many rounds
or goes on for more (never below the rounds it has finished, and never further for plain DAgger's
linear beta schedule, whose betas depend on the count). Each round's record carries its
wall-clock (``round/seconds``: rollouts, fit and its evaluation rollouts), so a run's timing
survives being resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from il_toolkit.atomic_files import write_text_atomically
from il_toolkit.config.training_config import ILConfig, get_beta
from il_toolkit.policies import as_policy, check_spaces, load
from il_toolkit.policies.base import Policy
from il_toolkit.rollout import rollout_episode
from il_toolkit.train.datasets.minari_io import from_rollout
from il_toolkit.train.il import common
from il_toolkit.train.il.common import ResumeMismatchError
from il_toolkit.train.il.behavioral_cloning import BehavioralCloning
from il_toolkit.train.il.expert_chunks import ExpertChunks, can_branch
from il_toolkit.train.il.gates import BetaGate, Gate, PersonAtControls, SimulatedPerson
from il_toolkit.train.il.interactive import ExpertFailure, InteractiveActor, LabelAccount, labelled_segments
from il_toolkit.train.il.rollout_limits import EndWhenStuck, LabelBudget, StuckDetector
from il_toolkit.train.il.query_rules import ENSEMBLE_VARIANTS, QueryCalibration
from il_toolkit.train.il.vla import VLABehavioralCloning, as_vla, require_fixed_instruction, require_retrainable_on_rollouts
from il_toolkit.model.vla import VLAModel
from il_toolkit.train.logging import MetricLogger

STATE_FILE = "state.json"
ROUND_CONSOLE = ("round", "expert_labels", "round/expert_labels", "round/context_switches", "round/expert_share",
                 "pc_success", "train/loss")  # a round's console line; metrics.jsonl has every figure
ROUND_EVAL_EPISODES = 20  # rollouts judging each round's policy (at most eval_episodes)
DATASET_DIR = Path("dataset") / "data"


class BetaMixture(InteractiveActor):
    """Plain DAgger's actor: the expert acts with probability ``beta`` at each step, else the
    learner, and the expert labels every observation it is shown. With ``takeover_when`` (a
    :class:`StuckDetector`) the expert acts alone for the rest of an episode once it is stuck."""

    def __init__(self, expert: Policy, learner: Policy | None, beta: float, rng: np.random.Generator,
                 takeover_when: StuckDetector | None = None) -> None:
        super().__init__(expert, learner, BetaGate(beta, rng), takeover_when=takeover_when)

    @property
    def learner_steps(self) -> int:
        return self.account.learner_steps


class _QuietLogger:
    """Stands in for the metric logger while ensemble members other than the first train, so the
    metrics file holds one record per epoch."""

    def log(self, metrics: Any, step: int) -> None:
        pass


class DAgger:
    """Interactive imitation learning with an expert that can be queried in any state.

    Args:
        env: the environment (instance or id).
        expert_policy: any policy: a function ``obs -> action``, a toolkit Policy (scripted
            expert, saved policy, a person at the controls), or an SB3 model. ``None``: the
            env's registered expert.
        config: an :class:`ILConfig` (``ILConfig.dagger()`` by default).
        use_wandb: log to wandb (offline by default).
        policy: the learner to start from (``--model_path``); a fresh one by default. It acts in
            round 1; later rounds train its architecture from fresh weights unless
            ``dagger_warm_start``.
        overwrite: start afresh in ``config.output_dir``, removing an earlier run there (a DAgger run
            there is otherwise resumed; another algorithm's is refused).
    """

    retrains_fresh = True  # False: the learner is always fine-tuned from its weights (pretrained VLA models)
    output_name = "dagger"  # ./output/<output_name> when the config leaves output_dir at the generic default

    def __init__(
        self,
        env: str | gym.Env,
        expert_policy: Any = None,
        config: ILConfig | None = None,
        use_wandb: bool | None = None,
        *,
        policy: Any = None,
        progress: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.config = common.own_config(config, ILConfig.dagger, self.output_name)
        self.overwrite = overwrite
        self.env = common.resolve_env(env)
        self.use_wandb = self.config.use_wandb if use_wandb is None else use_wandb
        self.progress = progress
        self._learner_given = policy is not None
        self.members: list[BehavioralCloning] = []  # ensemble_dagger's and thrifty_dagger's learners
        ensemble = self._build_members(policy) if self.config.dagger_variant in ENSEMBLE_VARIANTS else None
        self.bc = self._new_learner(None if self.members else policy)
        if self.members:
            self.bc.policy = ensemble  # acts in round 1; None: no learner until the first fit
        self.expert = self._expert(expert_policy)
        self.chunk_labels = self._chunk_labels()
        self.rng = np.random.default_rng(self.config.seed + 1)
        self.output_dir = Path(self.config.output_dir).resolve()  # minari mangles relative storage paths
        self.query = QueryCalibration(self.config, self.env)  # the ensemble variants' thresholds and models

    @property
    def thresholds(self) -> dict[str, float]:
        """The ensemble variants' current thresholds (:class:`~il_toolkit.train.il.query_rules.QueryCalibration`)."""
        return self.query.thresholds

    def _new_learner(self, policy: Any) -> BehavioralCloning:
        """The learner each round fits (the learner contract: ``adopt``, ``reinitialize``, ``fit``,
        ``fitted``, ``policy``, ``module``), starting from ``policy`` (None: a new one)."""
        return BehavioralCloning(self.env, self.config, use_wandb=False, policy=policy, progress=self.progress)

    def _build_members(self, policy: Any) -> Any:
        """The ensemble's learners; a given policy must be an ensemble (of an earlier run)."""
        from il_toolkit.policies.ensemble import EnsemblePolicy

        c = self.config
        if not _is_vector_space(self.env.observation_space):
            raise ValueError(f"{c.dagger_variant} sets its thresholds from the state vectors the learner visits; "
                             f"{common.env_id_of(self.env)} has {self.env.observation_space} observations: use hg_dagger "
                             "or dagger")
        if policy is not None and not isinstance(policy, EnsemblePolicy):
            raise ValueError(f"{c.dagger_variant} trains an ensemble of {c.dagger_ensemble_size} learners; the starting "
                             f"policy (--model_path) is a {type(policy).__name__}: give the best/ or last/ policy of an "
                             "earlier ensemble_dagger or thrifty_dagger run, or drop it")
        given = list(policy.members) if policy is not None else [None] * c.dagger_ensemble_size
        if len(given) != c.dagger_ensemble_size:
            raise ValueError(f"the starting ensemble has {len(given)} members, dagger_ensemble_size is "
                             f"{c.dagger_ensemble_size}: set --dagger_ensemble_size {len(given)}")
        self.members = [BehavioralCloning(self.env, c, use_wandb=False, policy=p, progress=False) for p in given]
        if c.trains_flow or any(m.policy is None for m in self.members):
            return None
        if policy is None:  # each BC seeded the same: members must start apart, or they agree on everything
            for k, member in enumerate(self.members[1:], start=1):
                member.reinitialize(seed=c.seed * 1000 + 100_000 * k)
        return EnsemblePolicy([m.policy for m in self.members])

    def _expert(self, expert_policy: Any) -> Policy:
        if expert_policy is None:
            from il_toolkit.experts import make_expert

            expert = make_expert(common.env_id_of(self.env), env=self.env)
        else:
            expert = as_policy(expert_policy, self.env.observation_space, self.env.action_space)
        check_spaces("expert", expert.observation_space, expert.action_space,
                     self.env.observation_space, self.env.action_space,
                     fix="DAgger needs an expert for the env it trains in")
        return expert

    @property
    def _labels_chunks(self) -> bool:
        """Plain DAgger with a chunked learner: the one case whose targets ``dagger_chunk_labels`` picks."""
        return self.config.action_chunk_size > 1 and self.config.dagger_variant == "dagger"

    def _chunk_labels(self) -> ExpertChunks | None:
        """Where plain DAgger labels a chunked learner with the expert's own chunks (``dagger_chunk_labels``)."""
        c = self.config
        chunked = self._labels_chunks
        if c.dagger_chunk_labels == "expert_chunks" and not chunked:
            raise ValueError(f"dagger_chunk_labels='expert_chunks' labels a chunked learner in plain DAgger; this run has "
                             f"action_chunk_size={c.action_chunk_size} and dagger_variant={c.dagger_variant!r}: set "
                             "--action_chunk_size above 1 and --dagger_variant dagger, or leave dagger_chunk_labels "
                             "at auto")
        wanted = c.dagger_chunk_labels == "expert_chunks" or (c.dagger_chunk_labels == "auto" and chunked
                                                               and can_branch(self.env, self.expert))
        return ExpertChunks(self.env, self.expert, c.action_chunk_size, c.executed_per_chunk) if wanted else None

    @property
    def chunk_labels_used(self) -> str | None:
        """Plain DAgger's chunk labels: "expert_chunks", "visited", or None (no chunked learner, or a
        variant that labels only where the expert acts)."""
        if not self._labels_chunks:
            return None
        return "expert_chunks" if self.chunk_labels is not None else "visited"

    @property
    def policy(self) -> Policy:
        """The learner."""
        return self.bc.policy

    def beta(self, iteration: int) -> float:
        c = self.config
        return get_beta(iteration, c.dagger_beta_schedule, c.dagger_initial_beta, c.dagger_iterations)

    # -- one round ------------------------------------------------------------------------
    def collect_round(self, iteration: int, label_limit: int | None = None) -> tuple[list[Any], dict[str, float]]:
        """Roll out the learner under the variant's gate for one round (at most ``label_limit``
        expert labels in all: the episode in progress is cut there and no further one starts);
        returns the expert-labelled stretches of the episodes and the round's stats."""
        from il_toolkit.rollout import Episode

        stuck_steps, on_stuck = self.config.dagger_stuck_steps, self.config.dagger_on_stuck
        takeover = StuckDetector(stuck_steps) if stuck_steps > 0 and on_stuck == "expert" else None
        gate = self._gate(iteration)
        learner = None if isinstance(gate, BetaGate) and gate.beta >= 1 else self.bc.policy
        actor = InteractiveActor(self.expert, learner, gate, takeover_when=takeover, chunk_labels=self.chunk_labels,
                                 label_limit=label_limit)
        spent = lambda: label_limit if actor.out_of_labels else actor.account.labels  # noqa: E731
        budget = LabelBudget(self.env, label_limit, spent=spent) if label_limit is not None else None
        env = budget if budget is not None else self.env
        env = EndWhenStuck(env, stuck_steps) if stuck_steps > 0 and on_stuck == "end" else env
        n = self.config.dagger_episodes_per_iter
        trajectories, returns, successes, stuck, visited = [], [], [], 0, []
        for seed in common.rollout_seeds(self.config, iteration, n):
            if budget is not None and budget.exhausted:
                break
            episode: Episode = rollout_episode(actor, env, seed)
            ended_stuck = isinstance(env, EndWhenStuck) and env.detector.still >= stuck_steps
            stuck += int(actor.taken_over or ended_stuck)
            rolled = episode.to_trajectory()
            cut_by_budget = budget is not None and budget.exhausted and not episode.terminated
            trajectories += [from_rollout(t, seed) for t in labelled_segments(
                rolled, actor.labels, self.config.action_chunk_size, cut_short=cut_by_budget) + actor.chunk_segments]
            returns.append(episode.sum_reward)
            successes.append(episode.success)
            if _is_vector_space(self.env.observation_space):
                visited.append(np.asarray(rolled.obs[:-1]))
                if not cut_by_budget:  # an episode the budget cut short neither failed nor succeeded
                    self.query.add_rollout(rolled, episode)
                self.query.recalibrate(gate, visited, self.bc.policy)
        account = actor.account.as_dict()
        stats = {"beta": gate.beta if isinstance(gate, BetaGate) else 0.0,
                 "round/mean_return": float(np.mean(returns)), "round/pc_success": 100 * float(np.mean(successes)),
                 **{f"round/{'expert_labels' if k == 'labels' else k}": v for k, v in account.items()},
                 "round/learner_action_share": 1.0 - account["expert_share"], "round/stuck_episodes": stuck,
                 "round/episodes": len(returns), **{f"round/threshold_{k}": v for k, v in self.query.thresholds.items()}}
        return trajectories, stats

    def _gate(self, iteration: int) -> Gate:
        """Who acts in round ``iteration`` (the variant's gate, its thresholds set now)."""
        c = self.config
        if c.dagger_variant == "dagger":
            return BetaGate(self.beta(iteration), self.rng)
        if c.dagger_variant == "hg_dagger":
            if hasattr(self.expert, "taking_over"):
                return PersonAtControls(self.expert)
            return SimulatedPerson(self.env.action_space, c.dagger_intervention_threshold, c.dagger_reaction_steps,
                                   c.dagger_settle_steps)
        return self.query.gate(self.bc.policy)

    # -- the run ------------------------------------------------------------------------
    def train(self, initial_dataset: str | None = None) -> dict[str, Any]:
        """Run (or resume) all rounds; returns paths, per-round stats and the final evaluation.
        Raises ``RunBusyError`` when another process is running in the same ``output_dir``."""
        self.config.validate()
        with common.run_dir_lock(self.output_dir):
            return self._train(initial_dataset)

    def _train(self, initial_dataset: str | None) -> dict[str, Any]:
        from tqdm.auto import tqdm

        start = time.perf_counter()
        state = self._resume_state(initial_dataset)
        trajectories = self._load_aggregate(state)
        self._drop_unfinished_records(state["completed_rounds"])
        logger = MetricLogger(self.output_dir, use_wandb=self.use_wandb, project=self.config.wandb_project,
                              run_name=f"{self.config.dagger_variant}-{common.env_id_of(self.env)}-s{self.config.seed}",
                              config=self.config.to_dict(), console=self.progress)
        if state["completed_rounds"] > 0:
            print(f"resuming {self.config.dagger_variant} after round {state['completed_rounds']} of "
                  f"{self.config.dagger_iterations} ({_labels(trajectories)} expert labels aggregated)", file=sys.stderr)
            self._restore_uncertainty(trajectories)
        offset = self.config.bc_epochs if state.setdefault("initial_fit", False) else 0
        bar = tqdm(total=self.config.dagger_iterations, initial=state["completed_rounds"], unit="round",
                   desc=self.config.dagger_variant, disable=not self.progress, dynamic_ncols=True)
        try:
            self._check_first_learner(state, trajectories)
            self._check_budget(state, trajectories)
            if state["completed_rounds"] == 0 and trajectories and not self._learner_given:
                fit_start = time.perf_counter()
                self._fit_initial(trajectories, logger)
                state["initial_fit"], offset = True, self.config.bc_epochs
                state["initial_fit_seconds"] = round(time.perf_counter() - fit_start, 1)
            for iteration in range(state["completed_rounds"], self.config.dagger_iterations):
                labels_left = self._labels_left(trajectories)
                if labels_left == 0:
                    break
                round_start = time.perf_counter()
                before = self.query.snapshot()
                try:
                    new, stats = self.collect_round(iteration, labels_left)
                except ExpertFailure as failure:
                    self.query.rollback(before)  # nothing from the round is kept
                    self._drop_round(state, iteration, str(failure))
                    bar.update(1)
                    continue
                trajectories += new
                self._append(new)
                history = self._fit(trajectories, logger, offset + iteration * self.config.bc_epochs, iteration)
                round_eval = self._round_eval(iteration)
                stats.update({"round": iteration + 1, "n_samples": history["n_train"] + history["n_val"],
                              "expert_labels": _labels(trajectories),
                              "train/loss": history["final_train_loss"], "best_val_loss": history["best_val_loss"],
                              "mean_reward": round_eval["mean_return"], "pc_success": round_eval["pc_success"],
                              "round/seconds": round(time.perf_counter() - round_start, 1)})
                logger.log(stats, step=offset + (iteration + 1) * self.config.bc_epochs, console_keys=ROUND_CONSOLE)
                self._finish_round(state, iteration, len(new), stats)
                bar.update(1)
                bar.set_postfix(labels=stats["expert_labels"], success=f"{stats['pc_success']:.0f}%")
        finally:
            bar.close()
            logger.close()
        train_seconds = time.perf_counter() - start
        best_round = self.best_round(state["rounds"])
        common.mark_trained_in(self.bc.policy, self.env)
        last = self.bc.policy.save(self.output_dir / "last")
        if best_round != state["completed_rounds"]:
            self.bc.policy = load(self.output_dir / "rounds" / f"{best_round:03d}")
            common.mark_trained_in(self.bc.policy, self.env)
        best = self.bc.policy.save(self.output_dir / "best")
        account = label_account(state["rounds"])
        results: dict[str, Any] = {
            "policy_path": str(best),
            "best_round": best_round,
            "last_policy_path": str(last),
            "dataset_path": str(self.output_dir / DATASET_DIR),
            "dagger_variant": self.config.dagger_variant,
            "chunk_labels": self.chunk_labels_used,
            "rounds": state["rounds"],
            "n_episodes": len(trajectories),
            "expert_labels": _labels(trajectories),
            "label_budget": self.config.dagger_label_budget,
            "labels": account,
            "train_seconds": train_seconds,
            "initial_fit_seconds": state.get("initial_fit_seconds"),
        }
        common.update_run_file(self.output_dir, {"labels": {**account, "total_expert_labels": _labels(trajectories)},
                                                 "best_round": best_round, "chunk_labels": self.chunk_labels_used})
        results["eval"] = self.bc.evaluate(self.output_dir / "eval.json")
        return results

    def _drop_unfinished_records(self, completed_rounds: int) -> None:
        """Keep ``metrics.jsonl`` up to the record of the last finished round: the epochs of a round
        cut short are redone on resume, and must not appear twice."""
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return
        lines = path.read_text().splitlines(keepends=True)
        keep = 0
        if completed_rounds > 0:
            for index, line in enumerate(lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    break  # a line cut short by the crash: nothing after it is kept
                if 0 < record.get("round", 0) <= completed_rounds and "pc_success" in record:
                    keep = index + 1  # the last finished round's record (a dropped round logs none)
        if keep < len(lines):
            write_text_atomically(path, "".join(lines[:keep]))

    def _restore_uncertainty(self, trajectories: list[Any]) -> None:
        """After a resume: the members adopt the saved ensemble's policies; the risk model's rollouts
        come back from disk and the novelty index and risk model are refit."""
        if self.members and hasattr(self.bc.policy, "members"):
            for member, policy in zip(self.members, self.bc.policy.members):
                member.adopt(policy)
        self.query.restore(self.output_dir, trajectories)

    def _fit(self, trajectories: list[Any], logger: MetricLogger, step_offset: int = 0,
             iteration: int | None = None) -> dict[str, Any]:
        """Retrain the learner on ``trajectories`` (round ``iteration``; None: the fit on D0): an
        MLP or SB3 learner is reinitialised (unless ``dagger_warm_start``) and its normaliser refit
        on them, learner-visited states included; a flow learner (``policy_type="flow"`` or
        ``action_chunk_size > 1``) is trained afresh on them, or with ``dagger_warm_start`` from the
        last round's weights (and D0's normaliser). An ensemble's members each train on
        the same split from their own initial weights (the first member logs)."""
        from il_toolkit.policies.ensemble import EnsemblePolicy

        if not trajectories:  # the expert labelled nothing yet: nothing to fit
            return {"n_train": 0, "n_val": 0, "final_train_loss": float("nan"), "best_val_loss": None}
        train_demos, val_demos = common.split_episodes(trajectories, self.config.bc_validation_split, self.bc.rng)
        if self.members:
            histories = [self._fit_learner(member, train_demos, val_demos, logger if k == 0 else _QuietLogger(),
                                           step_offset, iteration, member=k) for k, member in enumerate(self.members)]
            self.bc.policy = EnsemblePolicy([m.policy for m in self.members])
            history = histories[0]
        else:
            history = self._fit_learner(self.bc, train_demos, val_demos, logger, step_offset, iteration)
        self.query.update(trajectories)
        return history

    def _fit_learner(self, bc: BehavioralCloning, train_demos: list[Any], val_demos: list[Any], logger: Any,
                     step_offset: int, iteration: int | None, member: int = 0) -> dict[str, Any]:
        seed = self.config.seed * 1000 + (iteration + 1 if iteration is not None else 0) + 100_000 * member
        keep = self.config.kept_weights("flow" if self.config.trains_flow else "dagger_round")
        if self.config.trains_flow:
            start = bc.policy if iteration is not None and self.config.dagger_warm_start else None
            return bc.fit_chunked(train_demos, logger, val_demos=val_demos, step_offset=step_offset,
                                  seed=seed if self.members else None, keep=keep, start=start)
        if iteration is not None and not self.config.dagger_warm_start and self.retrains_fresh:
            bc.reinitialize(seed=seed)
        elif member > 0 and bc.policy is not None and not bc.fitted:
            bc.reinitialize(seed=seed)  # the members of a fresh ensemble start apart
        return bc.fit(train_demos, val_demos, logger, step_offset=step_offset, keep=keep, refit_normalizer=True)

    def _labels_left(self, trajectories: list[Any]) -> int | None:
        """Expert labels the budget (``dagger_label_budget``) still allows; None: no budget."""
        budget = self.config.dagger_label_budget
        if budget <= 0:
            return None
        left = max(budget - _labels(trajectories), 0)
        return 0 if self.chunk_labels is not None and left < self.chunk_labels.horizon else left  # no whole chunk fits

    def _check_budget(self, state: dict[str, Any], initial: list[Any]) -> None:
        """A budget that the initial dataset already spends would leave no round to run."""
        if state["completed_rounds"] == 0 and self._labels_left(initial) == 0:
            raise ValueError(
                f"dagger_label_budget={self.config.dagger_label_budget} is spent by the initial dataset alone "
                f"({_labels(initial)} labels), so no DAgger round could run: raise --dagger_label_budget above "
                "that" + (f" by a whole chunk at least ({self.chunk_labels.horizon} labels)" if self.chunk_labels else "")
                + ", or start from a smaller initial dataset (--dataset)"
            )

    def _check_first_learner(self, state: dict[str, Any], initial: list[Any]) -> None:
        """A chunked learner exists only once it has been fitted; without an initial dataset the
        first round must be the expert's alone."""
        if (self.bc.policy is None and state["completed_rounds"] == 0 and not initial
                and self.config.dagger_variant == "dagger" and self.beta(0) < 1):
            raise ValueError(
                f"a chunked learner (action_chunk_size={self.config.action_chunk_size}) has no policy before its first "
                f"fit, but round 1's beta is {self.beta(0):g}: set dagger_initial_beta=1 (the expert acts alone in "
                "round 1) or give an initial dataset (--dataset)"
            )

    def _fit_initial(self, initial: list[Any], logger: MetricLogger) -> None:
        """Fit a fresh learner on the initial dataset D0 before round 1, so that the first
        round's learner actions come from a policy trained on D0 (Ross et al.'s pi_1) rather
        than from random weights."""
        history = self._fit(initial, logger)
        logger.log({"round": 0, "n_samples": history["n_train"] + history["n_val"],
                    "train/loss": history["final_train_loss"], "best_val_loss": history["best_val_loss"]},
                   step=self.config.bc_epochs)

    @staticmethod
    def best_round(rounds: Sequence[dict[str, Any]]) -> int:
        """The round (1-based) whose policy did best in its own evaluation rollouts (success, then
        return; the later round on a tie). Learners can swing between rounds (a policy that
        succeeds 70% of the time can be followed by one that succeeds 0%); these rollouts start
        from seeds of their own, apart from the final evaluation's, like a validation split."""
        keys = [(r.get("pc_success", 0.0), r.get("mean_reward", 0.0), i + 1) for i, r in enumerate(rounds)
                if "dropped" not in r]
        if not keys:
            reasons = "; ".join(sorted({r["dropped"] for r in rounds}))
            raise ExpertFailure(f"every round was dropped, so there is no learner to keep: {reasons}. Fix the expert "
                                "(it must answer every state with an action of the env's action space)")
        return max(keys)[2]

    def _round_eval(self, iteration: int) -> dict[str, float]:
        from il_toolkit.evaluation import evaluate

        n = min(self.config.eval_episodes, ROUND_EVAL_EPISODES)
        return evaluate(self.bc.policy, self.env, n_episodes=n, seed=2_000_000 + 100 * iteration).aggregates

    # -- persistence --------------------------------------------------------------------
    def _run_signature(self, initial_dataset: str | None) -> dict[str, Any]:
        keys = ("dagger_iterations", "dagger_episodes_per_iter", "dagger_beta_schedule", "dagger_initial_beta",
                "bc_epochs", "batch_size", "learning_rate", "weight_decay", "bc_validation_split", "seed",
                "policy_type", "policy_hidden_sizes", "policy_activation", "relative_actions", "drop_velocity_obs",
                "task_frame", "policy_mixture_components", "lr_schedule", "action_chunk_size", "temporal_aggregation",
                "dagger_warm_start", "dagger_stuck_steps", "dagger_on_stuck", "dagger_label_budget",
                "dagger_variant", "dagger_ensemble_size", "dagger_target_query_rate", "dagger_intervention_threshold",
                "dagger_reaction_steps", "dagger_settle_steps")
        return {"env_id": common.env_id_of(self.env), "initial_dataset": initial_dataset,
                "expert": type(self.expert).__name__, **{k: getattr(self.config, k) for k in keys},
                "chunk_labels": self.chunk_labels_used}

    def _resume_state(self, initial_dataset: str | None) -> dict[str, Any]:
        signature = self._run_signature(initial_dataset)
        common.claim_output_dir(self.output_dir, "dagger", self.overwrite)
        path = self.output_dir / STATE_FILE
        if path.exists():
            state = json.loads(path.read_text())
            # settings added to the signature after a run was written count as their defaults
            stored = {**{k: v for k, v in ILConfig().to_dict().items() if k in signature}, **state["signature"]}
            stored.setdefault("chunk_labels", "visited" if stored["action_chunk_size"] > 1 and stored[
                "dagger_variant"] == "dagger" else None)  # before expert chunks, a chunked learner's were visited
            changed = sorted(k for k in signature if stored.get(k) != signature[k] and k != "dagger_iterations")
            if changed:
                raise ResumeMismatchError(
                    f"{self.output_dir} holds a DAgger run with different settings ({', '.join(changed)}); pass a "
                    "new --output_dir, rerun with the original settings to resume it, or --overwrite to start afresh"
                )
            self._check_round_count(stored["dagger_iterations"], state["completed_rounds"])
            if stored["dagger_iterations"] != self.config.dagger_iterations:
                state["signature"]["dagger_iterations"] = self.config.dagger_iterations
                common.update_run_file(self.output_dir, {"dagger_iterations": self.config.dagger_iterations})
            saved = [r for r in range(state["completed_rounds"], 0, -1)
                     if (self.output_dir / "rounds" / f"{r:03d}").is_dir()]  # a dropped round may have saved none
            if saved:
                self.bc.adopt(load(self.output_dir / "rounds" / f"{saved[0]:03d}"))
            return state
        # A run cut short inside its first round leaves data and no state: start that round afresh.
        shutil.rmtree(self.output_dir / DATASET_DIR.parent, ignore_errors=True)
        common.write_run_files(self.output_dir, self.config, {"algorithm": "dagger", **signature})
        return {"signature": signature, "completed_rounds": 0, "episodes": 0, "rounds": []}

    def _check_round_count(self, stored: int, completed: int) -> None:
        """A resumed run may stop after fewer rounds than it was started with, or go on for more,
        unless the rounds it has run would have been run differently: refuse a count below the
        rounds already finished, and more rounds for a plain-DAgger run whose linear beta schedule
        spreads its decay over ``dagger_iterations`` rounds."""
        requested = self.config.dagger_iterations
        if requested == stored:
            return
        if requested < completed:
            raise ResumeMismatchError(
                f"{self.output_dir} holds a DAgger run that has finished {completed} rounds; dagger_iterations={requested} "
                f"asks for fewer: pass dagger_iterations >= {completed} to resume it, or a new --output_dir"
            )
        c = self.config
        if (0 < completed < requested and c.dagger_variant == "dagger" and c.dagger_beta_schedule == "linear"
                and c.dagger_initial_beta > 0):
            raise ResumeMismatchError(
                f"{self.output_dir} holds a DAgger run whose linear beta schedule decays over dagger_iterations={stored} "
                f"rounds, {completed} of them run already: with {requested} the rounds left would follow another "
                f"schedule. Resume it with dagger_iterations={stored}, or start a run with a schedule that does not "
                "depend on the number of rounds (dagger_beta_schedule constant or exponential) to change it later"
            )

    def _load_aggregate(self, state: dict[str, Any]) -> list[Any]:
        """The aggregated data of every finished round (episodes past the recorded count, from a
        round cut short, are ignored) plus the initial dataset."""
        from minari import MinariDataset

        from il_toolkit.train.datasets.minari_io import load_demonstrations, trajectories_from

        initial = state["signature"]["initial_dataset"]
        trajectories = list(load_demonstrations(initial, env=self.env)) if initial else []
        if state["episodes"] > 0:
            dataset = MinariDataset(self.output_dir / DATASET_DIR)
            kept = trajectories_from(dataset, "DAgger aggregate", self.env, episode_indices=range(state["episodes"]))
            if dataset.total_episodes > state["episodes"]:
                # a round was cut short after its data was written: rebuild the aggregate without it
                shutil.rmtree(self.output_dir / DATASET_DIR.parent)
                self._append(kept)
            trajectories += kept
        return trajectories

    def _append(self, trajectories: Sequence[Any]) -> None:
        from il_toolkit import __version__
        from il_toolkit.train.datasets.minari_io import (actions_cut, chunk_start_mask, episode_buffer, rollout_seed,
                                                         unstack_observations, write_progress)

        marked = self.config.action_chunk_size > 1  # a chunked learner's episodes record where its windows may start
        buffers = [episode_buffer(unstack_observations(t.obs, len(t.acts) + 1), list(t.acts), list(t.rews), t.terminal, None,
                                  chunk_starts=chunk_start_mask(t) if marked else None, cut=actions_cut(t) if marked else None,
                                  rollout=rollout_seed(t))
                   for t in trajectories]
        write_progress(self.output_dir / DATASET_DIR, self.env, buffers, {
            "dataset_id": "dagger/aggregate-v0",
            "il_toolkit_env_id": common.env_id_of(self.env),
            "il_toolkit_expert": type(self.expert).__name__,
            "il_toolkit_version": __version__,
            "description": "DAgger aggregate: observations visited by the beta-mixture, actions labelled by the expert"
                           + ("; and the expert's chunks acted out from the learner's states in branches of the simulation"
                              if self.chunk_labels is not None else ""),
        })

    def _drop_round(self, state: dict[str, Any], iteration: int, reason: str) -> None:
        """A round in which the expert failed: nothing from it is aggregated; it is recorded as
        dropped (with the reason) and the learner stays as it was."""
        print(f"round {iteration + 1} dropped, nothing aggregated from it: {reason}", file=sys.stderr)
        self._finish_round(state, iteration, 0, {"round": iteration + 1, "dropped": reason})

    def _finish_round(self, state: dict[str, Any], iteration: int, n_new_episodes: int, stats: dict[str, Any]) -> None:
        """Save the round's policy, then record the round as finished (atomically, last)."""
        if self.bc.policy is not None:
            self.bc.policy.save(self.output_dir / "rounds" / f"{iteration + 1:03d}")
        self.query.save(self.output_dir)
        state["completed_rounds"] = iteration + 1
        state["episodes"] += n_new_episodes
        state["rounds"].append(dict(stats))
        write_text_atomically(self.output_dir / STATE_FILE, json.dumps(state, indent=2))


def label_account(rounds: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A run's expert spending, summed over its rounds' records (``round/...`` keys)."""
    total = LabelAccount.from_dict({("labels" if k == "expert_labels" else k): sum(r.get(f"round/{k}", 0) for r in rounds)
                                    for k in ("expert_labels", "expert_queries", "interventions", "hand_backs",
                                              "expert_steps", "learner_steps")})
    return total.as_dict()


def _is_vector_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def _labels(trajectories: Sequence[Any]) -> int:
    """Expert labels (steps) in ``trajectories``."""
    return int(sum(len(t.acts) for t in trajectories))


# -- VLA DAgger ----------------------------------------------------------------------------
class VLADAgger(DAgger):
    """DAgger (the user guide) with a :class:`VLAModel` learner: every round is
    :class:`~il_toolkit.train.il.dagger.DAgger`'s (beta-mixture rollouts, expert labels, the
    aggregate Minari dataset, resuming); retraining is :class:`VLABehavioralCloning`.

    Args:
        env: the env (id or instance); ``env_kwargs`` are used when it is an id (e.g.
            ``{"obs_type": "pixels_agent_pos"}`` for PushT pixels).
        model: the learner, a :class:`VLAModel` or the path of a saved one (``--model_path``).
        expert_policy, config, use_wandb: as for DAgger.

    The model is fine-tuned from its own (pretrained) weights every round, whatever
    ``dagger_warm_start`` says: reinitialising would throw its pretraining away.
    """

    retrains_fresh = False
    output_name = "vla_dagger"

    def __init__(self, env: Any, model: VLAModel | str | os.PathLike, expert_policy: Any = None,
                 config: ILConfig | None = None, use_wandb: bool | None = None, *,
                 env_kwargs: dict[str, Any] | None = None, dataset_name: str | None = None, progress: bool = True) -> None:
        from il_toolkit.envs import env_entry, make_env

        if isinstance(env, str):
            env = make_env(env, **(env_kwargs or {}))
        policy = require_retrainable_on_rollouts(as_vla(model), "VLA DAgger")
        require_fixed_instruction(env, "VLA DAgger")
        super().__init__(env, expert_policy, config, use_wandb, policy=policy, progress=progress)
        self.env_kwargs, self.dataset_name = dict(env_kwargs or {}), dataset_name
        if not policy._instruction_given:
            policy.instruction = env_entry(common.env_id_of(self.env)).instruction

    def _new_learner(self, policy: VLAModel) -> VLABehavioralCloning:
        return VLABehavioralCloning(policy, self.config, use_wandb=False, env=self.env, progress=self.progress)

    def _run_signature(self, initial_dataset: str | None) -> dict[str, Any]:
        """DAgger's, plus what ``--model_path`` chaining needs to rebuild the env (``env_kwargs``)
        and find the demonstrations (``dataset``)."""
        return {**super()._run_signature(initial_dataset), "algorithm_variant": "vla", "env_kwargs": self.env_kwargs,
                "dataset": self.dataset_name}


if __name__ == "__main__":  # python -m il_toolkit.train.il.dagger: the command line
    from il_toolkit.train.il.cli import main_dagger

    raise SystemExit(main_dagger(prog="python -m il_toolkit.train.il.dagger"))
