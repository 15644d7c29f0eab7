"""Supervised train and eval steps: pure, jit-able, ready for many devices.

``train_step(state, batch, key) -> (state, metrics)`` takes a batch
``{"image": [B, ...], "label": [B] or [B, D]}`` and a key for dropout.
``eval_step(state, batch) -> metrics`` takes a batch with a ``mask`` ``[B]``
and returns mergeable ``dlcore.metrics.Average`` s over real examples, so
partial batches count exactly. ``dlcore.supervised.objective`` bundles
them with an ``init`` as a ``dlcore.objective.Objective``.

Both accept ``axis_name``: under ``jax.pmap`` / ``jax.shard_map`` over that
axis, gradients, BatchNorm statistics and metrics are averaged (or summed)
across devices with ``lax.pmean`` / ``lax.psum``, giving the same update as
one device on the whole batch when the per-device batches are equal.

``task`` is ``"classification"`` (softmax cross-entropy, accuracy,
optional label smoothing) or ``"regression"`` (mean squared error).
``shift > 0`` augments training images by random translations
(``random_shift``), drawn from the step's key.
Bind the keyword options with ``functools.partial`` before ``jax.jit``.
"""

import jax
import jax.numpy as jnp
from jax import lax

from dlcore import parallel
from dlcore.metrics import Average
from dlcore.objective import Metrics
from dlcore.state import TrainState, apply_model
from dlcore.supervised import losses

TASKS = ("classification", "regression")


def _per_example(outputs, labels, task: str, label_smoothing: float):
  """Per-example ``(loss, extra metrics)``."""
  if task == "classification":
    loss = losses.cross_entropy(outputs, labels, label_smoothing)
    return loss, {"accuracy": (jnp.argmax(outputs, -1) == labels)
                              .astype(jnp.float32)}
  if task == "regression":
    return losses.squared_error(outputs, labels), {}
  raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def random_shift(key: jax.Array, images: jax.Array, max_shift: int,
                 axis_name: str | None = None) -> jax.Array:
  """Each image of ``[B, H, W, C]`` moved by its own offsets in ``[-s, s]`` pixels.

  The image is zero-padded by ``s = max_shift`` on every side and a
  ``H x W`` window cropped at a uniformly drawn position: zeros enter at the
  edges it moves away from. Under ``axis_name`` a device's offsets are its
  rows of the whole batch's.
  """
  _, height, width, channels = images.shape
  s = max_shift
  padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
  corners = parallel.shard_of_global_draw(
      lambda k, shape: jax.random.randint(k, shape, 0, 2 * s + 1), key,
      (images.shape[0], 2), axis_name)
  return jax.vmap(lambda image, corner: lax.dynamic_slice(
      image, (corner[0], corner[1], 0), (height, width, channels)))(
          padded, corners)


def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array,
               *, task: str = "classification", label_smoothing: float = 0.0,
               shift: int = 0,
               axis_name: str | None = None) -> tuple[TrainState, Metrics]:
  """One gradient step on the batch mean loss; metrics ``loss`` (+ ``accuracy``).

  Dropout and the shifts are those one device draws for the whole batch,
  under any mechanism (``apply_model``, ``shard_of_global_draw``).
  """
  images = batch["image"]
  if shift:
    key, shift_key = jax.random.split(key)
    images = random_shift(shift_key, images, shift, axis_name)

  def loss_fn(params):
    outputs, batch_stats = apply_model(state, params, images, train=True,
                                  key=key, axis_name=axis_name)
    loss, extra = _per_example(outputs, batch["label"], task, label_smoothing)
    metrics = {"loss": jnp.mean(loss),
               **{k: jnp.mean(v) for k, v in extra.items()}}
    return metrics["loss"], (batch_stats, metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, metrics


def eval_step(state: TrainState, batch: dict[str, jax.Array],
              key: jax.Array | None = None, *, task: str = "classification",
              axis_name: str | None = None) -> dict[str, Average]:
  """Masked averages ``loss`` (and ``accuracy`` for classification), summed over devices."""
  del key  # Evaluation is deterministic.
  outputs, _ = apply_model(state, state.params, batch["image"], train=False)
  loss, extra = _per_example(outputs, batch["label"], task, 0.0)
  mask = batch.get("mask")
  sums = {"loss": Average.of(loss, mask),
          **{k: Average.of(v, mask) for k, v in extra.items()}}
  if axis_name is not None:
    sums = lax.psum(sums, axis_name)
  return sums
