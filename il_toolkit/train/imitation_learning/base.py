"""The shared training step of every flow-matching trainer; families override only what differs.

Trainer contract (the flow-matching guide)::

    trainer = Trainer(models, optimizers, loss, device)      # nn.ModuleDict, dict[str, Optimizer], nn.Module | None
    metrics = trainer.train_step(data, epoch, total_epochs, iterations)   # dict[str, float], logged to wandb

``data`` is a plain dict of tensors (see :mod:`il_toolkit.model.spec` for the keys and
shapes); raw (un-normalised) state and actions, uint8 or [0, 1] float images.

The step: (1) features per camera, (2) conditioning by the info embedder, (3) flow matching
(noise x0, time t, x_t, target velocity x1 - x0), (4) velocity from the action decoder,
(5) loss, (6) zero-grad, backward, gradient clipping per component, optimizer step. With
``spec.shortcut_steps > 0`` part of every batch trains the shortcut model's self-consistency
instead (:meth:`FlowMatchingTrainer.shortcut_targets`), for every family alike, with a teacher
(:attr:`FlowMatchingTrainer.teacher`: the net itself by default, or a moving average of it).
Hooks a family overrides: :meth:`build_models` (extra components), :meth:`drop_sources`,
:meth:`training_context` / :meth:`inference_context` (extra conditioning such as a code),
:meth:`velocity` (e.g. a mixture of decoders; it takes the net from :meth:`decoder_for`, so that
the teacher can stand in) and :meth:`extra_losses`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from il_toolkit.model.components import FlowModels, build_flow_models, check_batch, n_sources, observation_sources
from il_toolkit.model.flow import TimeDistribution, flow_matching_pair, integrate, interpolate
from il_toolkit.model.spec import ACTION_KEY, ACTION_NOISE_KEY, ACTION_PAD_KEY, FlowModelSpec, shortcut_step_size_problem
from il_toolkit.train.grad_clip import clip_grad_norms
from il_toolkit.train.imitation_learning.training_state import read_training_state, write_training_state

# Spec fields il-toolkit train flow sets with a flag of the same name: resuming with another value names the flag.
RESUME_FLAGS = ("horizon", "n_obs_steps", "d_model", "velocity_net", "mlp_time_embedding", "mlp_expert_width",
                "action_statistics", "shortcut_steps", "shortcut_fraction", "shortcut_ema_decay")

Context = dict[str, Any]


class FlowMatchingTrainer:
    """Base flow-matching trainer: uniform time, no camera dropout, L2 velocity loss."""

    key: ClassVar[str] = ""
    time_distribution: ClassVar[TimeDistribution] = TimeDistribution("uniform")
    camera_dropout: ClassVar[float] = 0.0
    velocity_loss_kind: ClassVar[str] = "l2"
    requires_depth: ClassVar[bool] = False
    # spec fields that shape none of this family's components (a training state saved with other values resumes)
    spec_fields_unused: ClassVar[tuple[str, ...]] = ("mlp_expert_width",)

    def __init__(
        self,
        models: nn.ModuleDict,
        optimizers: Mapping[str, torch.optim.Optimizer],
        loss: nn.Module | None = None,
        device: torch.device | str = "cpu",
        *,
        grad_clip_norm: float | None = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        spec = getattr(models, "spec", None)
        if not isinstance(spec, FlowModelSpec):
            raise TypeError(
                f"{type(self).__name__} needs the models built by {type(self).__name__}.build_models(spec) "
                "(an nn.ModuleDict that carries its FlowModelSpec)"
            )
        self.check_models(models)
        self.spec: FlowModelSpec = spec
        self.device = torch.device(device)
        self.models: FlowModels = models.to(self.device)  # type: ignore[assignment]
        self.optimizers = dict(optimizers)
        self.loss = loss
        self.grad_clip_norm = grad_clip_norm
        self.generator = generator
        self.teacher = self.build_teacher()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build_models(cls, spec: FlowModelSpec) -> FlowModels:
        """The components this trainer trains (subclasses add theirs)."""
        if cls.requires_depth and not spec.depth_cameras:
            raise ValueError(
                f"{cls.key or cls.__name__} trains on depth as an extra visual input: "
                "build the spec with depth_cameras=(...,) (read from 'observation.depth.<camera>')"
            )
        return build_flow_models(spec)

    @classmethod
    def build_optimizers(
        cls, models: nn.ModuleDict, lr: float = 3e-4, weight_decay: float = 1e-6
    ) -> dict[str, torch.optim.Optimizer]:
        """One AdamW per component that has trainable parameters."""
        optimizers = {}
        for name, module in models.items():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                optimizers[name] = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)  # one kernel per step: ~10% of a state step
        return optimizers

    @classmethod
    def load_models(cls, path: Any) -> FlowModels:
        """Models from a saved flow policy directory, refusing one written by another trainer."""
        from il_toolkit.policies.checkpoint import CheckpointError, read_checkpoint

        config, tensors = read_checkpoint(path)
        saved = config.get("config", {}).get("trainer") if config.get("kind") == "flow_matching" else None
        if saved != cls.key:
            what = f"a policy trained by {saved!r}" if saved else f"a {config.get('kind')!r} policy"
            raise CheckpointError(
                f"{str(path)!r} holds {what}, not one trained by {cls.key!r}; resume it with "
                f"TRAINER_REGISTRY.get({saved!r}) or start {cls.key!r} from scratch"
            )
        models = cls.build_models(FlowModelSpec.from_json(config["config"]["spec"]))
        models.load_state_dict(dict(tensors), strict=True)
        return models

    def build_teacher(self) -> AveragedModel | None:
        """A shortcut model's teacher: the exponential moving average (decay ``spec.shortcut_ema_decay``) of
        the velocity net, updated after every :meth:`train_step`, that takes the half steps of the self-consistency
        targets; ``None`` (the live net is its own teacher) for plain flow matching, a decay of 0, or a trainer
        without optimizers (a policy's sampler, whose :meth:`compute_loss` a BC or DAgger step drives: nothing
        would update an average there).

        Measured on ALOHA transfer (chunks of 16 x 14, ``shortcut_steps=8``, ``shortcut_fraction=0.75``, 3,000
        steps, ``benchmarks/shortcut_teacher.py``): with the live net as teacher the flow-matching loss flared up
        to 337 in the first 1,000 steps and then stuck at 1.05 (the self-consistency loss at 0.001: a field that
        hardly changes along the path agrees with itself); with the average (decay 0.99) it never passed 2.3 and
        fell to 0.22; after 40,000 steps the policy succeeded in 74% of episodes at ten Euler steps, against 0% with
        the live net (``benchmarks/flow_state.py``). Elsewhere it cost one-step success: 58% -> 18% on ALOHA insertion
        (``shortcut_steps=128``, ``shortcut_fraction=0.25``, 40,000 steps, one seed), 67-70% -> 49-55% on the two-mode
        task (8, 0.75, 2,000 steps, 3 seeds), 99.3% either way on PushT (128, 0.25, 6,000 steps), where decay 0.999
        gave 17-27%. A likely cause (the 0.999 case fits it; the insertion drop is larger than it explains): each
        step size learns from the teacher's half-size steps, so the average's lag, about ``1 / (1 - decay)`` steps,
        adds up over the ``log2(shortcut_steps)`` sizes. Hence the default of 0 (the live net).
        """
        if not self.spec.shortcut_steps or self.spec.shortcut_ema_decay == 0 or not self.optimizers:
            return None
        teacher = AveragedModel(self.models["action_decoder"], multi_avg_fn=get_ema_multi_avg_fn(self.spec.shortcut_ema_decay),
                                use_buffers=True)
        return teacher.requires_grad_(False).eval()

    def check_models(self, models: nn.ModuleDict) -> None:
        """Refuse models built for a different trainer (missing or extra components)."""
        expected = set(type(self).build_models(models.spec).keys())
        got = set(models.keys())
        if expected != got:
            raise ValueError(
                f"models do not fit {self.key or type(self).__name__}: missing components {sorted(expected - got)}, "
                f"unexpected components {sorted(got - expected)}; build them with {type(self).__name__}.build_models(spec)"
            )

    # -- pieces of the step -------------------------------------------------------------
    def to_device(self, data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Tensors (or arrays) of ``data`` on the trainer's device; other entries are ignored."""
        return {
            k: torch.as_tensor(v).to(self.device)
            for k, v in data.items()
            if isinstance(v, torch.Tensor) or hasattr(v, "__array__")
        }

    def drop_sources(self, batch_size: int) -> torch.Tensor | None:
        """``(B, n_sources)`` booleans: whole visual inputs dropped with ``camera_dropout``."""
        n_visual = len(self.spec.visual_inputs)
        if self.camera_dropout <= 0 or n_visual == 0:
            return None
        dropped = torch.zeros(batch_size, n_sources(self.spec), dtype=torch.bool, device=self.device)
        draw = torch.rand(batch_size, n_visual, device=self.device, generator=self.generator) < self.camera_dropout
        dropped[:, :n_visual] = draw
        return dropped

    def encode(self, batch: Mapping[str, torch.Tensor], *, training: bool) -> torch.Tensor:
        """Steps 1-2: per-camera features, then the info embedder: ``(B, N, d_model)``."""
        sources = observation_sources(self.models, batch)
        dropped = self.drop_sources(sources[0].shape[0]) if training else None
        return self.models["info_embedder"](sources, dropped)

    def training_context(self, cond: torch.Tensor, actions: torch.Tensor) -> Context:
        """Extra conditioning built with access to the demonstrated chunk (e.g. a posterior code)."""
        return {"cond": cond}

    def inference_context(
        self, cond: torch.Tensor, *, deterministic: bool, generator: torch.Generator | None = None, **options: Any
    ) -> Context:
        """Conditioning for sampling; ``options`` are family-specific (e.g. ``guidance_scale``)."""
        if options:
            raise ValueError(f"unknown inference options {sorted(options)}; {self.key or type(self).__name__} takes "
                             "none but shortcut_step_size, for shortcut models")
        return {"cond": cond}

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        """Step 4: predicted velocity ``(B, horizon, Da)`` (a shortcut model's over ``context["step_size"]``), by
        :meth:`decoder_for` ``(context)`` (an override must take its net from there too)."""
        return self.decoder_for(context)(x_t, t, context["cond"], context.get("step_size"))

    def decoder_for(self, context: Context) -> nn.Module:
        """The velocity net a context asks for: ``context["decoder"]`` (the shortcut teacher) where set, else the model's."""
        decoder = context.get("decoder")
        return self.models["action_decoder"] if decoder is None else decoder

    def velocity_loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss is not None:
            return self.loss(predicted, target)
        if self.velocity_loss_kind == "l1":
            return F.l1_loss(predicted, target)
        return F.mse_loss(predicted, target)

    def extra_losses(
        self, context: Context, x_t: torch.Tensor, t: torch.Tensor, predicted: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Family-specific terms added to the velocity loss, and their metrics."""
        return torch.zeros((), device=self.device), {}

    # -- the step -----------------------------------------------------------------------
    def compute_loss(self, data: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Steps 1-5 on one batch: ``(total loss, metrics)``; chunk positions marked in
        ``data["action_is_pad"]`` ``(B, H)``, where present, count as zero velocity error (a
        family's own parts, its posterior codes for one, see the chunk as given, the edge action
        repeated there, as at a demonstration's end). Each chunk's noise is ``data["action_noise"]``
        ``(B, H, Da)`` (normalised units) where given (reflow's coupled pairs), else drawn."""
        batch = self.to_device(data)
        check_batch(batch, self.spec, need_action=True)
        actions = self.models["normalizer"].normalize_action(batch[ACTION_KEY].float())
        cond = self.encode(batch, training=True)
        x0 = batch.get(ACTION_NOISE_KEY)
        if x0 is None:
            x0 = torch.randn(actions.shape, device=self.device, generator=self.generator)
        elif x0.shape != actions.shape:
            raise ValueError(f"batch[{ACTION_NOISE_KEY!r}] has shape {tuple(x0.shape)}; expected the chunks' "
                             f"{tuple(actions.shape)} (one noise per chunk position, normalised units)")
        else:
            x0 = x0.float()
        t = self.time_distribution.sample(actions.shape[0], device=self.device, generator=self.generator)
        x_t, target = flow_matching_pair(x0, actions, t)
        context = self.training_context(cond, actions)
        if self.spec.shortcut_steps:
            x_t, t, target, context = self.shortcut_targets(x0, actions, x_t, t, target, context)
        predicted = self.velocity(x_t, t, context)
        pad = batch.get(ACTION_PAD_KEY)
        if pad is not None:  # no label there: zero error, LeRobot's mean of the masked loss over every position
            predicted = torch.where(pad.bool()[..., None], target, predicted)
        velocity_loss = self.velocity_loss(predicted, target)
        extra, metrics = self.extra_losses(context, x_t, t, predicted, actions)
        if self.spec.shortcut_steps:  # the two kinds of rows' velocity losses, each on its own
            shortcut_rows = context["step_size"] > 0
            for name, rows in (("self_consistency_loss", shortcut_rows), ("flow_matching_loss", ~shortcut_rows)):
                if bool(rows.any()):
                    metrics[name] = float(self.velocity_loss(predicted[rows], target[rows]).detach())
        total = velocity_loss + extra
        return total, {"loss": float(total.detach()), "velocity_loss": float(velocity_loss.detach()), **metrics}

    def shortcut_targets(
        self, x0: torch.Tensor, actions: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, target: torch.Tensor,
        context: Context,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Context]:
        """A shortcut model's batch (Frans et al. 2024): ``(x_t, t, target, context)`` with ``context["step_size"]``.

        Inputs: noise ``x0``, demonstrated chunks ``actions``, their flow-matching pair ``x_t``,
        ``target`` (all ``(B, H, Da)``), times ``t`` ``(B,)`` and the training context. The first
        ``spec.shortcut_fraction`` of the rows get a step ``d = 2^-k`` (``k`` uniform in
        ``0 .. log2(shortcut_steps) - 1``), a time on the grid of ``d`` (so ``t + d <= 1``) and, as
        target, the mean of two half steps from there by the :attr:`teacher` (:meth:`self_consistency_target`, bounded by
        the largest absolute noise or action of those rows):
        a step of ``d`` must land where two of ``d / 2`` do. The other rows keep their flow-matching pair
        and step size 0 (the instantaneous velocity, which the smallest step ``1 / shortcut_steps`` stands for).
        """
        batch = actions.shape[0]
        n = int(batch * self.spec.shortcut_fraction)
        step = torch.zeros(batch, device=self.device)
        if n == 0:
            return x_t, t, target, {**context, "step_size": step}
        levels = int(math.log2(self.spec.shortcut_steps))
        k = torch.randint(0, levels, (n,), device=self.device, generator=self.generator).float()
        d = torch.pow(2.0, -k)
        t_b = torch.floor(torch.rand(n, device=self.device, generator=self.generator) * torch.pow(2.0, k)) * d
        x_b = interpolate(x0[:n], actions[:n], t_b)
        bound = torch.maximum(x0[:n].abs().amax(), actions[:n].abs().amax())
        target_b = self.self_consistency_target(x_b, t_b, d, self.context_rows(context, n, batch), bound)
        step[:n] = d
        return (torch.cat([x_b, x_t[n:]]), torch.cat([t_b, t[n:]]), torch.cat([target_b, target[n:]]),
                {**context, "step_size": step})

    @torch.no_grad()
    def self_consistency_target(
        self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, context: Context, bound: torch.Tensor | float
    ) -> torch.Tensor:
        """The mean velocity ``(B, H, Da)`` of two of the model's own steps of ``d / 2`` from ``x`` at ``t``
        (``d``, ``t`` ``(B,)``), in eval mode and without gradient, taken by :attr:`teacher` (the moving average of
        the velocity net; the net itself where there is none) on the live model's conditioning.

        ``bound`` is the largest absolute value of the noise and chunks (``shortcut_targets`` passes that of the
        rows it makes targets for). The point after the first half step is clipped to ``[-bound, bound]`` (Frans
        et al. clip it to [-4, 4]) and the target to ``[-2 bound, 2 bound]``, the largest velocity ``x1 - x0`` of a
        straight path in that range. Unbounded, the model's own targets fed on themselves: ALOHA transfer (chunks
        of 16 x 14, ``shortcut_steps=8``, ``shortcut_fraction=0.75``) diverged, and a test's chunks of the same
        shape reach a loss above 1e24 within 100 steps.
        """
        was_training = self.models.training
        self.models.eval()
        try:
            half = d / 2
            context = {**context, "step_size": half, "decoder": self.teacher}
            first = self.velocity(x, t, context)
            middle = (x + half[:, None, None] * first).clamp(-bound, bound)
            second = self.velocity(middle, t + half, context)
        finally:
            self.models.train(was_training)
        return ((first + second) / 2).clamp(-2 * bound, 2 * bound)

    def context_rows(self, context: Context, n: int, batch: int) -> Context:
        """The context of the batch's first ``n`` rows: tensors whose first dimension is the ``batch``
        are cut, everything else is kept (a family whose context holds other per-row data overrides this)."""
        return {key: value[:n] if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch
                else value for key, value in context.items()}

    def train_step(self, data: Mapping[str, Any], epoch: int, total_epochs: int, iterations: int) -> dict[str, float]:
        """One gradient step; returns metrics (all finite floats unless training diverged)."""
        if not self.optimizers:
            raise RuntimeError(f"{type(self).__name__} was built without optimizers; pass build_optimizers(models)")
        self.models.train()
        loss, metrics = self.compute_loss(data)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.grad_clip_norm if self.grad_clip_norm is not None else math.inf
        norms = clip_grad_norms({name: module.parameters() for name, module in self.models.items()}, max_norm)
        metrics.update({f"grad_norm/{name}": float(norm) for name, norm in norms.items()})
        for optimizer in self.optimizers.values():
            optimizer.step()
        if self.teacher is not None:
            self.teacher.update_parameters(self.models["action_decoder"])
        metrics.update(epoch=float(epoch), progress=float(epoch) / max(total_epochs, 1), iterations=float(iterations))
        return metrics

    # -- resumable training state ---------------------------------------------------------
    def save_training_state(self, path: Any, *, epoch: int, iterations: int,
                            generators: Mapping[str, torch.Generator] | None = None) -> Path:
        """Write models + optimizer state to ``path/trainer_state.{json,safetensors}`` (no pickles; each file written
        atomically, see :mod:`.training_state`), with the random state: :attr:`generator`, PyTorch's global
        generator and ``generators`` (e.g. the minibatch sampler's), so that a resumed run continues as one that
        was never stopped."""
        tensors = {f"models.{k}": v.detach().cpu().contiguous() for k, v in self.models.state_dict().items()}
        if self.teacher is not None:
            tensors.update({f"teacher.{k}": v.detach().cpu().contiguous() for k, v in self.teacher.state_dict().items()})
        optim_meta: dict[str, Any] = {}
        for name, optimizer in self.optimizers.items():
            state = optimizer.state_dict()
            scalars: dict[str, dict[str, Any]] = {}
            for index, entries in state["state"].items():
                for field, value in entries.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"optim.{name}.{index}.{field}"] = value.detach().cpu().contiguous()
                    else:
                        scalars.setdefault(str(index), {})[field] = value
            optim_meta[name] = {"param_groups": state["param_groups"], "scalars": scalars, "n_state": len(state["state"])}
        for name, generator in self._generators(generators).items():
            tensors[f"rng.{name}"] = generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {"trainer": self.key, "spec": self.spec.to_json(), "epoch": int(epoch), "iterations": int(iterations),
                "optimizers": optim_meta}
        return write_training_state(path, tensors, meta)

    def load_training_state(self, path: Any, *, generators: Mapping[str, torch.Generator] | None = None) -> dict[str, int]:
        """Restore what :meth:`save_training_state` wrote (the random state too, where the state holds it: states
        saved before it did restore none); returns ``{"epoch", "iterations"}``."""
        from il_toolkit.policies.checkpoint import CheckpointError

        directory = Path(path)
        tensors, meta = read_training_state(directory)
        if meta.get("trainer") != self.key:
            raise CheckpointError(
                f"{str(directory)!r} holds the training state of {meta.get('trainer')!r}, not {self.key!r}; "
                f"resume it with TRAINER_REGISTRY.get({meta.get('trainer')!r})"
            )
        self._check_saved_spec(directory, meta["spec"])
        self.models.load_state_dict({k[len("models."):]: v for k, v in tensors.items() if k.startswith("models.")})
        self.teacher = self.build_teacher()  # a state saved without one (older, or decay 0) restarts it from the net
        teacher = {k[len("teacher."):]: v for k, v in tensors.items() if k.startswith("teacher.")}
        if self.teacher is not None and teacher:
            self.teacher.load_state_dict(teacher)
        if set(meta["optimizers"]) != set(self.optimizers):
            raise CheckpointError(
                f"saved optimizers {sorted(meta['optimizers'])} do not match this trainer's {sorted(self.optimizers)}"
            )
        for name, optimizer in self.optimizers.items():
            info = meta["optimizers"][name]
            state: dict[int, dict[str, Any]] = {}
            prefix = f"optim.{name}."
            for key, value in tensors.items():
                if key.startswith(prefix):
                    index, field = key[len(prefix):].split(".", 1)
                    state.setdefault(int(index), {})[field] = value.to(self.device)
            for index, fields in info["scalars"].items():
                state.setdefault(int(index), {}).update(fields)
            optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
        for name, generator in self._generators(generators).items():
            if f"rng.{name}" in tensors:
                generator.set_state(tensors[f"rng.{name}"])
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        return {"epoch": int(meta["epoch"]), "iterations": int(meta["iterations"])}

    def _generators(self, generators: Mapping[str, torch.Generator] | None) -> dict[str, torch.Generator]:
        """The random generators a training state holds besides PyTorch's global CPU one: :attr:`generator` as
        ``"trainer"`` (on any device) and ``generators``."""
        own = {"trainer": self.generator} if self.generator is not None else {}
        return {**own, **dict(generators or {})}

    def _check_saved_spec(self, directory: Path, saved: Mapping[str, Any]) -> None:
        """Refuse a training state saved with another model spec, naming the fields that differ and the flags to pass."""
        from il_toolkit.policies.checkpoint import CheckpointError

        saved_spec = FlowModelSpec.from_json(dict(saved)).to_json()  # fields added since count as their old values
        here = self.spec.to_json()
        for name in self.spec_fields_unused:
            saved_spec.pop(name, None), here.pop(name, None)
        if saved_spec == here:
            return
        changed = {k: (saved_spec.get(k), v) for k, v in here.items() if saved_spec.get(k) != v}
        listed = ", ".join(f"{k}: saved {old!r}, here {new!r}" for k, (old, new) in changed.items())
        flags = [f"--{k} {old}" for k, (old, _) in changed.items() if k in RESUME_FLAGS]
        hint = f" (train flow: {' '.join(flags)})" if flags else ""
        raise CheckpointError(
            f"{str(directory)!r} was trained with a different model spec ({listed}); resume it with the settings it "
            f"was started with{hint}, or start afresh in another directory"
        )

    # -- inference ----------------------------------------------------------------------
    @torch.no_grad()
    def sample_actions(
        self,
        data: Mapping[str, Any],
        *,
        n_steps: int = 10,
        solver: str = "euler",
        deterministic: bool = True,
        generator: torch.Generator | None = None,
        shortcut_step_size: float | None = None,
        noise: torch.Tensor | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Integrate noise to an action chunk ``(B, horizon, Da)`` in the data's (raw) units.

        ``deterministic`` only affects discrete choices a family makes (e.g. argmax code);
        the noise comes from ``generator`` (seed it for reproducible chunks). A shortcut model is told the
        step size ``shortcut_step_size`` (default: the solver's, ``1 / n_steps``; 0: the smallest, so that it
        integrates its instantaneous velocity as plain flow matching does, which shows what the step-size
        conditioning adds: ``benchmarks/shortcut_chunks.py``); a model trained without it refuses one.
        ``noise`` ``(B, horizon, Da)``, in normalised units: the starting points, instead of drawing them.
        """
        problem = None if shortcut_step_size is None else shortcut_step_size_problem(shortcut_step_size, self.spec.shortcut_steps)
        if problem:
            raise ValueError(problem)
        if any(module.training for module in self.models.modules()):  # eval() re-sets every module: tens of us a chunk
            self.models.eval()
        batch = self.to_device(data)
        cond = self.encode(batch, training=False)
        context = self.inference_context(cond, deterministic=deterministic, generator=generator, **options)
        if self.spec.shortcut_steps:  # a shortcut model takes steps of the size the solver takes
            step_size = 1.0 / n_steps if shortcut_step_size is None else float(shortcut_step_size)
            context["step_size"] = torch.full((cond.shape[0],), step_size, device=self.device)
        shape = (cond.shape[0], self.spec.horizon, self.spec.action_dim)
        if noise is None:
            x0 = torch.randn(shape, device=self.device, generator=generator)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (batch, horizon, action_dim) = {shape}")
        else:
            x0 = noise.to(self.device, torch.float32)
        x1 = integrate(lambda x, t: self.velocity(x, t, context), x0, n_steps=n_steps, solver=solver)
        return self.models["normalizer"].unnormalize_action(x1)
