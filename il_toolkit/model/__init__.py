"""Networks for the flow-matching policy family.

- :mod:`il_toolkit.model.flow`: stateless flow-matching primitives (time sampling, path, ODE solvers)
- :mod:`il_toolkit.model.spec`: :class:`FlowModelSpec`, the JSON-serialisable architecture description
- :mod:`il_toolkit.model.backbones`: per-camera image backbones
- :mod:`il_toolkit.model.encoders`: proprioception encoder and small MLPs
- :mod:`il_toolkit.model.transformer`: the info embedder and the velocity action decoder
- :mod:`il_toolkit.model.normalizer`: state/action normalisation kept inside the checkpoint
- :mod:`il_toolkit.model.vq`: the VQ-VAE codebook with dead-code replacement
- :mod:`il_toolkit.model.ot`: the entropic optimal-transport (Sinkhorn) divergence
- :mod:`il_toolkit.model.components`: ``build_flow_models(spec)`` -> ``FlowModels`` (an ``nn.ModuleDict``)

Nothing is imported here, so ``import il_toolkit.model`` stays cheap.
"""
