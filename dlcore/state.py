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
import jax.numpy as jnp
import optax
from jax import lax
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
  (``frozen_norms_in_inference``). Under ``axis_name`` each device's
  dropout mask is its rows of the mask for the whole batch
  (``global_dropout``), so ``n`` devices drop what one device drops.
  """
  variables = {"params": params}
  kwargs: dict[str, Any] = {"train": train}
  if state.has_batch_stats:
    variables["batch_stats"] = state.batch_stats
    kwargs["axis_name"] = axis_name
  rngs = {"dropout": key} if key is not None else None
  with global_dropout(axis_name if train else None):
    if not train or not state.has_batch_stats:
      return state.apply_fn(variables, inputs, rngs=rngs,
                            **kwargs), state.batch_stats
    with frozen_norms_in_inference(state.frozen):
      outputs, updates = state.apply_fn(variables, inputs, rngs=rngs,
                                        mutable=["batch_stats"], **kwargs)
  return outputs, updates["batch_stats"]


@contextlib.contextmanager
def global_dropout(axis_name: str | None) -> Iterator[None]:
  """Within it (under ``shard_map`` / ``pmap`` over ``axis_name``), every ``nn.Dropout`` draws the whole batch's mask.

  Each device draws the mask of the global batch ``[n * b, ...]`` from the
  same key and keeps its own ``b`` rows, which is the mask one device
  draws for the whole batch (``nn.Dropout``: ``bernoulli(key, 1 - rate,
  shape)``, inputs scaled by ``1 / (1 - rate)``). Without ``axis_name``
  it does nothing: under ``jit`` the compiler splits one global draw.
  """
  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != "__call__" or not isinstance(module, nn.Dropout):
      return next_fun(*args, **kwargs)
    inputs = args[0]
    deterministic = nn.merge_param(
        "deterministic", module.deterministic,
        kwargs.get("deterministic", args[1] if len(args) > 1 else None))
    if module.rate == 0.0 or deterministic or module.rate == 1.0:
      return next_fun(*args, **kwargs)
    keep = 1.0 - module.rate
    key = kwargs.get("rng") or module.make_rng(module.rng_collection)
    shape = [1 if d in module.broadcast_dims else size
             for d, size in enumerate(inputs.shape)]
    if 0 not in module.broadcast_dims:  # Rows differ: draw all of them.
      rows = shape[0]
      shape[0] *= lax.axis_size(axis_name)
      mask = lax.dynamic_slice_in_dim(
          jax.random.bernoulli(key, keep, shape),
          lax.axis_index(axis_name) * rows, rows)
    else:
      mask = jax.random.bernoulli(key, keep, shape)
    mask = jnp.broadcast_to(mask, inputs.shape)
    return lax.select(mask, inputs / keep, jnp.zeros_like(inputs))

  if axis_name is None:
    yield
    return
  with nn.intercept_methods(interceptor):
    yield


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
