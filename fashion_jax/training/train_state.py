"""The train state: the model, its optimizer and an EMA copy of the model, by name.

Steps and checkpoints handle it as `(graphdef, state)`: `state` is the pure pytree of
a `TrainState` (`state["model"]`, `state["optimizer"]`, `state["ema"]`) and
`nnx.merge(graphdef, state)` gives the `TrainState` back inside a jitted function. A
state made for inference has no optimizer, so evaluating or serving a run never builds
one nor reads the ImageNet weights the run started from.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from fashion_jax import parallel
from fashion_jax.training import balancing
from fashion_jax.models import weights as pretrained
from fashion_jax.models import build_model, initialise


class TrainState(nnx.Module):
  """`optimizer` is None in an inference state; `ema` is None unless config.ema_decay > 0."""

  def __init__(self, model, optimizer=None, ema=None):
    self.model = model
    self.optimizer = optimizer
    self.ema = ema  # A second copy of the model (parameters and BatchNorm statistics).

  def scored_model(self, use_ema: bool):
    """The model whose outputs are scored or served: the EMA weights or the trained ones."""
    return self.ema if use_ema else self.model


def create(config, tasks, vocabs, mesh, tx=None):
  """(graphdef, state) of a new TrainState, replicated over `mesh`.

  With the optax transform `tx` it is a training state, whose backbone starts from
  `config.model.pretrained` when set; without, a model-only state for inference, to be
  filled from a checkpoint (models/initialise.py says how the state is computed).
  """
  learned = balancing.BALANCERS.get(config.loss_balancing.name, balancing.Balancer).learned
  with_ema = config.get("ema_decay", 0.0) > 0

  def build():
    model = build_model(config.model, tasks, vocabs, config.seed,
                        learned_loss_weights=learned, image_size=config.data.image_size)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param) if tx is not None else None
    return TrainState(model, optimizer, nnx.clone(model) if with_ema else None)

  graphdef, _ = nnx.split(nnx.eval_shape(build))
  state = initialise.initialised_state(build, parallel.replicated(mesh))
  if tx is not None and config.model.get("pretrained", "") not in ("", pretrained.RANDOM):
    weights = pretrained.load_backbone(config.model.pretrained, config.model.name)
    state["model"] = pretrained.apply_to_model(
        state["model"], weights, f"config.model.pretrained={config.model.pretrained}",
        config.model.name)
  if with_ema:  # Starts equal to the model (after any imported weights).
    state["ema"] = jax.tree.map(jnp.copy, state["model"])
  return graphdef, state
