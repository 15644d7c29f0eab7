"""The train-state pytree shared by the supervised steps.

``TrainState`` is Flax's ``train_state.TrainState`` (step, params, tx,
opt_state, apply_fn) plus ``batch_stats``, the BatchNorm running statistics
(an empty dict for models without BatchNorm). Everything else a step needs —
the batch and a key — is passed to it explicitly.
"""

from typing import Any

import flax.linen as nn
import jax
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any = None

  @property
  def has_batch_stats(self) -> bool:
    return bool(jax.tree.leaves(self.batch_stats))


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       sample_input: jax.Array, key: jax.Array) -> TrainState:
  """Initialises ``model`` on ``sample_input`` (a batch, shape ``[B, ...]``)."""
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         sample_input, train=False)
  return TrainState.create(
      apply_fn=model.apply, params=variables["params"], tx=tx,
      batch_stats=variables.get("batch_stats", {}))


def count_params(params: Any) -> int:
  """The number of scalars in a parameter pytree."""
  return sum(x.size for x in jax.tree.leaves(params))
