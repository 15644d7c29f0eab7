"""The train-state pytree shared by the supervised steps.

``TrainState`` is Flax's ``train_state.TrainState`` (step, params, tx,
opt_state, apply_fn) plus ``batch_stats``, the BatchNorm running statistics
(an empty dict for models without BatchNorm), and ``frozen``, the
``OptimizerConfig.freeze`` patterns: ``apply_gradients`` keeps the BatchNorm
statistics whose paths they fullmatch (their parameters are kept by the
optimizer's ``set_to_zero``). Everything else a step needs — the batch and a
key — is passed to it explicitly.
"""

from typing import Any

import flax.linen as nn
import jax
import optax
from flax import struct
from flax.training import train_state

from dlcore.optim import check_freeze, frozen_mask


class TrainState(train_state.TrainState):
  batch_stats: Any = None
  frozen: tuple[str, ...] = struct.field(pytree_node=False, default=())

  def apply_gradients(self, *, grads, **kwargs) -> "TrainState":
    """One optimizer update; frozen paths of ``batch_stats`` keep their values."""
    if self.frozen and "batch_stats" in kwargs:
      kwargs["batch_stats"] = jax.tree.map(
          lambda frozen, new, old: old if frozen else new,
          frozen_mask(self.frozen, self.batch_stats), kwargs["batch_stats"],
          self.batch_stats)
    return super().apply_gradients(grads=grads, **kwargs)

  @property
  def has_batch_stats(self) -> bool:
    return bool(jax.tree.leaves(self.batch_stats))


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       sample_input: jax.Array, key: jax.Array, *,
                       frozen: tuple[str, ...] = ()) -> TrainState:
  """Initialises ``model`` on ``sample_input`` (a batch, shape ``[B, ...]``).

  ``frozen``: the optimizer's freeze patterns, whose BatchNorm statistics
  then stay as initialised; a pattern matching no parameter is refused.
  """
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         sample_input, train=False)
  check_freeze(frozen, variables["params"])
  return TrainState.create(
      apply_fn=model.apply, params=variables["params"], tx=tx,
      batch_stats=variables.get("batch_stats", {}), frozen=tuple(frozen))


def count_params(params: Any) -> int:
  """The number of scalars in a parameter pytree."""
  return sum(x.size for x in jax.tree.leaves(params))
