"""The train-state pytree that every objective's networks are kept in.

``TrainState`` is Flax's ``train_state.TrainState`` (step, params, tx,
opt_state, apply_fn) plus ``batch_stats``, the BatchNorm running statistics
(an empty dict for models without BatchNorm), and ``frozen``, the
``OptimizerConfig.freeze`` patterns: ``apply_gradients`` keeps the BatchNorm
statistics whose paths they fullmatch (their parameters are kept by the
optimizer's ``set_to_zero``), and a training step runs inside
``frozen_norms_in_inference(frozen)``, so those layers normalise with their
running statistics, as in evaluation, not with the batch's: a frozen
backbone computes the same function in training and evaluation. Everything
else a step needs — the batch and a key — is passed to it explicitly.
"""

import contextlib
import re
from typing import Any, Iterator

import flax.linen as nn
import jax
import optax
from flax import struct
from flax.training import train_state

from dlcore.optim import frozen_mask


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

  ``frozen``: the optimizer's freeze patterns (checked against the
  parameters by ``dlcore.optim.check_optimizer``), whose BatchNorm
  statistics then stay as initialised.
  """
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         sample_input, train=False)
  return TrainState.create(
      apply_fn=model.apply, params=variables["params"], tx=tx,
      batch_stats=variables.get("batch_stats", {}), frozen=tuple(frozen))


def apply_model(state: TrainState, params: Any, inputs: Any, *, train: bool,
                key: jax.Array | None = None, axis_name: str | None = None):
  """``state``'s model on ``inputs`` with ``params``: ``(outputs, new_batch_stats)``.

  ``key`` feeds the ``dropout`` stream; a model with BatchNorm statistics
  also takes ``axis_name`` (synchronised statistics) and, in training,
  updates them, except those of frozen layers, which run in inference mode
  (``frozen_norms_in_inference``).
  """
  variables = {"params": params}
  kwargs: dict[str, Any] = {"train": train}
  if state.has_batch_stats:
    variables["batch_stats"] = state.batch_stats
    kwargs["axis_name"] = axis_name
  if not train or not state.has_batch_stats:
    outputs = state.apply_fn(variables, inputs,
                             rngs={"dropout": key} if key is not None else None,
                             **kwargs)
    return outputs, state.batch_stats
  with frozen_norms_in_inference(state.frozen):
    outputs, updates = state.apply_fn(variables, inputs, rngs={"dropout": key},
                                      mutable=["batch_stats"], **kwargs)
  return outputs, updates["batch_stats"]


def count_params(params: Any) -> int:
  """The number of scalars in a parameter pytree."""
  return sum(x.size for x in jax.tree.leaves(params))


@contextlib.contextmanager
def frozen_norms_in_inference(frozen: tuple[str, ...]) -> Iterator[None]:
  """Within it, every ``nn.BatchNorm`` whose statistics are frozen uses them.

  A layer at path ``P`` is frozen when a pattern fullmatches ``P/mean``
  (the rule ``TrainState.apply_gradients`` keeps statistics by). Its call
  is replaced by the same layer with ``use_running_average=True`` applied
  to the same variables: ``(x - mean) / sqrt(var + eps) * scale + bias``
  with the running ``mean`` and ``var``, exactly what evaluation computes,
  and no new statistics. Any model, any nesting; without patterns it does
  nothing.
  """
  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (context.method_name != "__call__"
        or not isinstance(module, nn.BatchNorm)
        or not any(re.fullmatch(p, "/".join((*module.path, "mean")))
                   for p in frozen)):
      return next_fun(*args, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "use_running_average"}
    inference = module.clone(parent=None, use_running_average=True)
    variables = {name: module.variables[name]
                 for name in ("params", "batch_stats")
                 if name in module.variables}
    return inference.apply(variables, *args, **kwargs)

  if not frozen:
    yield
    return
  with nn.intercept_methods(interceptor):
    yield
