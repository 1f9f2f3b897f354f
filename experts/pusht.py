"""A memoryless state-feedback pushing expert for PushT.

gym-pusht's block has no damping and no friction (``space.damping = 0`` zeroes every velocity
each physics step, and the shapes' friction is 0), so the T moves only while the pusher
presses on it, and only along the contact normal. A push at body point ``r`` (relative to the
centre of gravity) with inward normal ``n`` therefore moves the block, per pixel that the
contact point travels along ``n``, by the twist::

    j = 1 / (1/m + (r x n)^2 / I)        v = j n / m        omega = j (r x n) / I

Every query the expert (1) expresses the pose error (centre of gravity and wrapped angle)
in the block's frame, (2) scores a fixed set of candidate contacts along the T's edges by the
fraction of the error their push can remove (squared cosine between twist and error in the
metric ``diag(1, 1, L^2)``), divided by ``1 + route / travel_scale`` where route is the length
of the collision-free path the pusher needs to reach the contact, and (3) either pushes through
the chosen contact by the distance that minimises the predicted error, or moves towards its
pre-contact point along the shortest path around the T (a visibility graph of the T inflated
by the pusher's radius, precomputed in the block's frame; only board-reachable corners are
used). The action depends only on the current state (agent x, y, block x, y, angle: the
``state`` observation), so DAgger can query it anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

# the T's geometry and physics (gym_pusht's add_tee, add_circle, goal_pose), shared with the task frame
from il_toolkit.envs.pusht_geometry import AGENT_RADIUS, BAR, BOARD, COG, GOAL_POSE, MASS, MOMENT, STATE_DIM, STEM  # noqa: F401
from il_toolkit.policies.base import BasePolicy


@dataclass(frozen=True)
class PushTControlParams:
    """Tuning of the controller (pixels, radians).

    ``length_scale``: L in the error metric diag(1, 1, L^2); ``travel_scale``: a contact's
    score (the fraction of the error its push can remove) is divided by 1 + route / scale;
    ``gap``: pre-contact clearance between pusher and edge; ``margin``: clearance kept from the T while routing; ``max_push``/``max_move``: the
    farthest target ahead of the pusher while pushing / moving; ``lead``: how far past a
    routing corner the target is put (capped by the corner's distance to the pre-contact
    point), so the pusher passes corners instead of stopping at them; ``engage_slack``: how far
    beyond the pre-contact point a pusher still counts as lined up to push; ``engage_lateral``: how far
    sideways of a contact (along its edge) a pusher still counts as engaged with it (at ±3 px, a
    pusher just outside the window backed off and re-approached, a discontinuity learners
    oscillated on: BC-200 72% vs 90% at ±15 px, same trainer and seeds); ``final_lead``: on
    the last straight leg the target is put this far past the pre-contact point along the
    push direction, scaled down linearly to 0 at ``final_lead_width`` pixels of sideways offset.
    """

    length_scale: float = 60.0
    travel_scale: float = 100.0
    gap: float = 6.0
    margin: float = 4.0
    max_push: float = 30.0
    max_move: float = 100.0
    lead: float = 30.0
    final_lead: float = 20.0
    final_lead_width: float = 10.0
    engage_slack: float = 2.0
    engage_lateral: float = 15.0
    contact_spacing: float = 4.0
    edge_margin: float = 3.0

    def __post_init__(self) -> None:
        if self.gap <= self.margin + 0.5:
            raise ValueError(
                f"gap ({self.gap}) must exceed margin + 0.5 ({self.margin + 0.5}): pre-contact points "
                "would lie inside the region the router keeps clear of the T"
            )
        for name in ("length_scale", "travel_scale", "max_push", "max_move", "contact_spacing", "final_lead_width",
                     "engage_lateral"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _inflate(rect: tuple[float, float, float, float], d: float) -> tuple[float, float, float, float]:
    return (rect[0] - d, rect[1] + d, rect[2] - d, rect[3] + d)


def segments_hit_rect(p0: np.ndarray, p1: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Whether segments ``p0 -> p1`` (each (K, 2)) cross the open rectangle's interior; (K,) bool.

    Liang–Barsky clipping, vectorised.
    """
    d = p1 - p0
    ps = (-d[:, 0], d[:, 0], -d[:, 1], d[:, 1])
    qs = (p0[:, 0] - rect[0], rect[1] - p0[:, 0], p0[:, 1] - rect[2], rect[3] - p0[:, 1])
    t0 = np.zeros(len(p0))
    t1 = np.ones(len(p0))
    outside = np.zeros(len(p0), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in zip(ps, qs):
            parallel = np.abs(p) < 1e-12
            outside |= parallel & (q <= 0)
            r = q / np.where(parallel, 1.0, p)
            t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
            t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
    return ~outside & (t1 - t0 > 1e-9)


class _Tables:
    """Candidate contacts and the routing graph, all in the block's body frame."""

    def __init__(self, params: PushTControlParams) -> None:
        self.obstacle = (_inflate(BAR, AGENT_RADIUS + params.margin), _inflate(STEM, AGENT_RADIUS + params.margin))
        self._build_contacts(params)
        self._build_graph(params)

    def blocked(self, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
        return segments_hit_rect(p0, p1, self.obstacle[0]) | segments_hit_rect(p0, p1, self.obstacle[1])

    def inside(self, points: np.ndarray) -> np.ndarray:
        result = np.zeros(len(points), dtype=bool)
        for xmin, xmax, ymin, ymax in self.obstacle:
            result |= (points[:, 0] > xmin) & (points[:, 0] < xmax) & (points[:, 1] > ymin) & (points[:, 1] < ymax)
        return result

    def _build_contacts(self, params: PushTControlParams) -> None:
        # (start, end, inward normal) of every edge of the T's outline
        edges = [
            ((-60, 0), (60, 0), (0, 1)),
            ((60, 0), (60, 30), (-1, 0)),
            ((-60, 0), (-60, 30), (1, 0)),
            ((15, 30), (60, 30), (0, -1)),
            ((-60, 30), (-15, 30), (0, -1)),
            ((15, 30), (15, 120), (-1, 0)),
            ((-15, 30), (-15, 120), (1, 0)),
            ((-15, 120), (15, 120), (0, -1)),
        ]
        points, normals = [], []
        for start, end, normal in edges:
            a, b = np.array(start, float), np.array(end, float)
            length = float(np.linalg.norm(b - a))
            usable = length - 2 * params.edge_margin
            count = max(1, int(usable // params.contact_spacing) + 1)
            for t in np.linspace(params.edge_margin, length - params.edge_margin, count):
                points.append(a + (b - a) / length * t)
                normals.append(normal)
        p = np.array(points)
        n = np.array(normals, float)
        pre = p - n * (AGENT_RADIUS + params.gap)
        keep = ~self.inside(pre)
        self.points, self.normals, self.pre = p[keep], n[keep], pre[keep]
        self.touch = self.points - self.normals * AGENT_RADIUS
        self.tangents = np.stack([-self.normals[:, 1], self.normals[:, 0]], axis=1)
        r = self.points - COG
        torque_arm = r[:, 0] * self.normals[:, 1] - r[:, 1] * self.normals[:, 0]
        j = 1.0 / (1.0 / MASS + torque_arm**2 / MOMENT)
        # twist (vx, vy, omega) about the centre of gravity per pixel of push, body frame
        self.twists = np.column_stack([j[:, None] * self.normals / MASS, j * torque_arm / MOMENT])

    def _build_graph(self, params: PushTControlParams) -> None:
        d = AGENT_RADIUS + params.margin + 1.0
        self.vertices = np.array(
            [
                (BAR[0] - d, BAR[2] - d), (BAR[1] + d, BAR[2] - d), (BAR[1] + d, BAR[3] + d),
                (STEM[1] + d, BAR[3] + d), (STEM[1] + d, STEM[3] + d), (STEM[0] - d, STEM[3] + d),
                (STEM[0] - d, BAR[3] + d), (BAR[0] - d, BAR[3] + d),
            ]
        )
        nv = len(self.vertices)
        i, k = np.meshgrid(np.arange(nv), np.arange(nv), indexing="ij")
        i, k = i.ravel(), k.ravel()
        visible = ~self.blocked(self.vertices[i], self.vertices[k])
        self.vertex_dist = np.full((nv, nv), np.inf)
        self.vertex_dist[i[visible], k[visible]] = np.linalg.norm(
            self.vertices[i[visible]] - self.vertices[k[visible]], axis=1
        )
        np.fill_diagonal(self.vertex_dist, 0.0)
        nc = len(self.pre)
        vi, ci = np.meshgrid(np.arange(nv), np.arange(nc), indexing="ij")
        vi, ci = vi.ravel(), ci.ravel()
        last_leg = np.linalg.norm(self.vertices[vi] - self.pre[ci], axis=1)
        last_leg[self.blocked(self.vertices[vi], self.pre[ci])] = np.inf
        self.last_leg = last_leg.reshape(nv, nc)

    def routes(self, usable: np.ndarray) -> np.ndarray:
        """via[u, c]: shortest route from vertex u to contact c's pre-contact point, (V, C),
        through the vertices marked ``usable`` (those on the board) only."""
        dist = np.where(usable[:, None] & usable[None, :], self.vertex_dist, np.inf)
        for m in range(len(dist)):  # Floyd–Warshall on 8 vertices
            dist = np.minimum(dist, dist[:, m : m + 1] + dist[m : m + 1, :])
        return np.min(dist[:, :, None] + self.last_leg[None, :, :], axis=1)

    def escape(self, point: np.ndarray) -> np.ndarray:
        """The nearest point just outside the inflated T, for a pusher inside it; (2,)."""
        candidates = []
        for xmin, xmax, ymin, ymax in self.obstacle:
            for axis, value in ((0, xmin - 1.0), (0, xmax + 1.0), (1, ymin - 1.0), (1, ymax + 1.0)):
                c = point.copy()
                c[axis] = value
                candidates.append(c)
        candidates = np.array(candidates)
        candidates = candidates[~self.inside(candidates)]
        return candidates[np.argmin(np.linalg.norm(candidates - point, axis=1))]


@lru_cache(maxsize=16)
def _tables(params: PushTControlParams) -> _Tables:
    return _Tables(params)


def expert_target(
    state: np.ndarray, params: PushTControlParams = PushTControlParams(), contact_bias: np.ndarray | None = None,
    goal: np.ndarray = GOAL_POSE,
) -> np.ndarray:
    """The pusher target (x, y) in board pixels for one state (agent x, y, block x, y, angle)
    and a target pose ``goal`` (x, y, angle; gym-pusht's fixed one by default)."""
    return plan(state, params, contact_bias, goal)[0]


def plan(
    state: np.ndarray, params: PushTControlParams = PushTControlParams(), contact_bias: np.ndarray | None = None,
    goal: np.ndarray = GOAL_POSE,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`expert_target` plus what it decided: ``contact`` (index), ``pushing``, ``fit``, ``travel``."""
    tables = _tables(params)
    agent, block, angle = np.asarray(state[:2], float), np.asarray(state[2:4], float), float(state[4])
    goal = np.asarray(goal, float)
    rot = _rot(angle)
    cog = block + rot @ COG
    goal_cog = goal[:2] + _rot(goal[2]) @ COG
    error = np.array([*(rot.T @ (goal_cog - cog)), _wrap(goal[2] - angle)])
    weight = np.array([1.0, 1.0, params.length_scale**2])
    gain = tables.twists @ (weight * error)  # error reduction rate per pixel of push
    twist_norm = np.einsum("ij,ij->i", tables.twists**2, np.broadcast_to(weight, tables.twists.shape))
    error_norm = float(error @ (weight * error)) + 1e-12
    fit = np.where(gain > 0, gain**2 / (twist_norm * error_norm), -1.0)
    push = np.clip(gain / twist_norm, 0.0, params.max_push)

    local_agent = rot.T @ (agent - block)
    offset = local_agent - tables.points
    normal_gap = -np.einsum("ij,ij->i", offset, tables.normals)  # agent centre to edge line
    lateral = np.einsum("ij,ij->i", offset, tables.tangents)
    engaged = (np.abs(lateral) <= params.engage_lateral) & (normal_gap >= AGENT_RADIUS - 3.0) & (
        normal_gap <= AGENT_RADIUS + params.gap + params.engage_slack
    )

    start, escape_len = local_agent, 0.0
    if tables.inside(local_agent[None])[0]:
        start = tables.escape(local_agent)
        escape_len = float(np.linalg.norm(start - local_agent))
    direct = np.linalg.norm(tables.pre - start, axis=1)
    direct[tables.blocked(np.broadcast_to(start, tables.pre.shape), tables.pre)] = np.inf
    world_vertices = block + tables.vertices @ rot.T
    usable = np.all((world_vertices >= BOARD[0]) & (world_vertices <= BOARD[1]), axis=1)
    to_vertex = np.linalg.norm(tables.vertices - start, axis=1)
    to_vertex[tables.blocked(np.broadcast_to(start, tables.vertices.shape), tables.vertices) | ~usable] = np.inf
    via_total = to_vertex[:, None] + tables.routes(usable)
    travel = escape_len + np.minimum(direct, via_total.min(axis=0))
    travel = np.where(engaged, 0.0, travel)

    world_pre = block + tables.pre @ rot.T
    world_touch = block + tables.touch @ rot.T
    reachable = np.all((world_pre >= BOARD[0]) & (world_pre <= BOARD[1]), axis=1) & np.all(
        (world_touch >= BOARD[0]) & (world_touch <= BOARD[1]), axis=1
    )
    score = fit / (1.0 + travel / params.travel_scale)
    if contact_bias is not None:
        score = score + contact_bias
    score = np.where(reachable & np.isfinite(travel), score, -np.inf)
    best = int(np.argmax(score))

    if engaged[best]:
        target_local = tables.touch[best] + tables.normals[best] * push[best]
        limit = params.max_push + params.gap
    else:
        final_leg = escape_len == 0.0 and np.isfinite(direct[best]) and direct[best] <= via_total[:, best].min()
        if final_leg:
            # lined up with the contact: aim through it, so the pusher arrives moving and pushes
            alignment = max(0.0, 1.0 - abs(float(lateral[best])) / params.final_lead_width)
            target_local = tables.pre[best] + tables.normals[best] * params.final_lead * alignment
        else:
            waypoint = start if escape_len > 0.0 else tables.vertices[int(np.argmin(via_total[:, best]))]
            # pass through corners instead of stopping at them
            heading = waypoint - local_agent
            lead = min(params.lead, float(np.linalg.norm(tables.pre[best] - waypoint)))
            target_local = waypoint + heading / max(float(np.linalg.norm(heading)), 1e-9) * lead
        limit = params.max_move
    target = block + rot @ target_local
    step = target - agent
    length = float(np.linalg.norm(step))
    if length > limit:
        target = agent + step * (limit / length)
    info = {"contact": best, "pushing": bool(engaged[best]), "fit": float(fit[best]), "travel": float(travel[best])}
    return np.clip(target, *BOARD), info


def sim_of(env: gym.Env) -> Any:
    """gym_pusht's PushTEnv behind a toolkit or gym-pusht env (it has ``.agent`` and ``.block``)."""
    unwrapped = env.unwrapped
    sim = getattr(unwrapped, "sim", unwrapped)
    if not (hasattr(sim, "agent") and hasattr(sim, "block")):
        raise TypeError(
            f"{type(unwrapped).__name__} is not a PushT env: make it with il_toolkit.envs.make_env('il_toolkit/PushT-v0')"
        )
    return sim


def sim_state(sim: Any) -> np.ndarray:
    """The 5-dim state (agent x, y, block x, y, angle) of a gym_pusht PushTEnv, float64."""
    return np.array(
        [*sim.agent.position, *sim.block.position, sim.block.angle % (2 * math.pi)], dtype=np.float64
    )


def _state_space() -> spaces.Box:
    return spaces.Box(low=np.zeros(5), high=np.array([512.0, 512.0, 512.0, 512.0, 2 * np.pi]), dtype=np.float64)


class PushTExpert(BasePolicy):
    """Scripted pusher for ``il_toolkit/PushT-v0``: action = pusher target (x, y) in pixels.

    With ``obs_type="state"`` observations (B, 5) it acts from the observations themselves,
    so a batch of states can be labelled (DAgger). For pixel observation types it reads the
    state of ``env.unwrapped.sim`` (one env, so one observation at a time).

    ``action_noise``: std (pixels) of Gaussian noise added to every action (whatever
    ``deterministic`` says: collectors call ``predict(obs, deterministic=True)``, and the noise
    is this expert's configuration, not exploration).
    ``randomize_approach``: every :meth:`reset` draws new controller tunings and a fixed
    preference over contacts for the episode (the policy stays a function of the state
    within an episode). ``seed`` seeds both.
    """

    checkpoint_kind = "pusht_expert"

    def __init__(
        self,
        env: gym.Env | None = None,
        *,
        action_noise: float = 0.0,
        randomize_approach: bool = False,
        seed: int | None = None,
    ) -> None:
        if action_noise < 0:
            raise ValueError(f"action_noise is a standard deviation in pixels and must be >= 0, got {action_noise}")
        observation_space = env.observation_space if env is not None else _state_space()
        action_space = (
            env.action_space if env is not None else spaces.Box(low=0.0, high=512.0, shape=(2,), dtype=np.float32)
        )
        super().__init__(observation_space, action_space)
        self.env = env
        self.action_noise = float(action_noise)
        self.randomize_approach = bool(randomize_approach)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.params = PushTControlParams()
        self.contact_bias: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Draw this episode's tuning when ``randomize_approach`` is set."""
        if not self.randomize_approach:
            return
        base = PushTControlParams()
        self.params = replace(
            base,
            gap=float(self.rng.uniform(6.0, 10.0)),
            lead=float(self.rng.uniform(15.0, 40.0)),
            travel_scale=base.travel_scale * float(self.rng.uniform(0.5, 2.0)),
            length_scale=base.length_scale * float(self.rng.uniform(0.8, 1.25)),
            max_push=float(self.rng.uniform(20.0, 40.0)),
            max_move=float(self.rng.uniform(60.0, 120.0)),
        )
        self.contact_bias = self.rng.normal(0.0, 0.05, size=len(_tables(self.params).points))

    def _is_state_obs(self) -> bool:
        return isinstance(self.observation_space, spaces.Box) and self.observation_space.shape == (STATE_DIM,)

    def states_from(self, observations: Any) -> np.ndarray:
        """The (B, 5) simulator states behind a batch of observations."""
        if self._is_state_obs():
            return np.asarray(observations, dtype=np.float64).reshape(-1, STATE_DIM)
        if self.env is None:
            raise ValueError(
                "PushTExpert without an env acts only on state observations (B, 5); for pixel "
                "observations construct it with the env being stepped: PushTExpert(env)"
            )
        first = next(iter(observations.values())) if isinstance(observations, Mapping) else observations
        if len(first) != 1:
            raise ValueError(
                f"PushTExpert reads pixel-obs states from its one env, so it takes one observation at a time, "
                f"got a batch of {len(first)}; use obs_type='state' to label batches"
            )
        return sim_state(sim_of(self.env))[None]

    def goal_pose(self) -> np.ndarray:
        """The target pose (x, y, angle) to push to: the env's ``goal_pose`` where it has one (the
        two-target PushT, whose target changes per episode), else gym-pusht's fixed one."""
        goal = getattr(self.env.unwrapped, "goal_pose", None) if self.env is not None else None
        return GOAL_POSE if goal is None else np.asarray(goal, np.float64)

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        states = self.states_from(observations)
        goal = self.goal_pose()
        actions = np.stack([expert_target(s, self.params, self.contact_bias, goal) for s in states])
        if self.action_noise > 0:
            actions = np.clip(actions + self.rng.normal(0.0, self.action_noise, size=actions.shape), *BOARD)
        return actions.astype(self.action_space.dtype)

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {"action_noise": self.action_noise, "randomize_approach": self.randomize_approach, "seed": self.seed}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    @classmethod
    def from_checkpoint(cls, config, tensors, observation_space, action_space) -> "PushTExpert":
        expert = cls(
            action_noise=float(config.get("action_noise", 0.0)),
            randomize_approach=bool(config.get("randomize_approach", False)),
            seed=config.get("seed"),
        )
        expert.observation_space, expert.action_space = observation_space, action_space
        return expert


__all__ = ["PushTControlParams", "PushTExpert", "expert_target", "sim_of", "sim_state"]
