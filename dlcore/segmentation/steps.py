"""Semantic-segmentation train and eval steps: per-pixel cross-entropy, exact mIoU.

``train_step(state, batch, key) -> (state, metrics)`` takes a batch
``{"image": [B, H, W, C], "label": [B, H, W]}`` of images and integer masks;
``eval_step(state, batch) -> metrics`` also takes ``mask`` ``[B]`` (0 for
padded examples) and returns mergeable sums. Both follow the supervised
steps' contract: with ``axis_name`` set (under ``jax.pmap`` /
``jax.shard_map``) they make gradients, BatchNorm statistics and metrics
global, equal to one device on the whole batch.

The loss is the softmax cross-entropy of every pixel, weighted by its
class's weight ``w[y]`` (1 without ``class_weights``) and 0 for pixels
labelled ``ignore_label``, normalised by the summed weights of the whole
(global) batch::

  loss = sum_p w[y_p] CE(logits_p, y_p) / sum_p w[y_p]     (ignored p left out)

(PyTorch's ``CrossEntropyLoss(weight, ignore_index)``; Scenic weighs pixels
the same way). Across devices the denominator is the global one, so the
per-device pixel counts may differ and the update is still exact.
``train_step`` augments image and mask together (``augment``) when its
``augment`` config is active.
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from jax import lax

from dlcore.data.segmentation import IGNORE_LABEL
from dlcore.metrics import Average, ConfusionMatrix
from dlcore.objective import Metrics
from dlcore.segmentation.augment import AugmentConfig, augment
from dlcore.state import TrainState, apply_model


def pixel_losses(logits: jax.Array, masks: jax.Array,
                 class_weights: Sequence[float] | None = None,
                 ignore_label: int = IGNORE_LABEL) -> tuple[jax.Array, jax.Array]:
  """Per-pixel cross-entropy ``[B, H, W]`` and weights ``[B, H, W]`` (0 where ignored).

  ``logits`` ``[B, H, W, K]``, ``masks`` ``[B, H, W]`` integer labels.
  """
  valid = masks != ignore_label
  labels = jnp.where(valid, masks, 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  weights = valid.astype(jnp.float32)
  if class_weights:
    weights = weights * jnp.asarray(class_weights, jnp.float32)[labels]
  return losses, weights


def _ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, 0 where nothing counted (no NaN gradient)."""
  return numerator / jnp.where(denominator > 0, denominator, 1.0)


def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array,
               *, class_weights: Sequence[float] | None = None,
               augment_config: AugmentConfig = AugmentConfig(),
               ignore_label: int = IGNORE_LABEL,
               axis_name: str | None = None) -> tuple[TrainState, Metrics]:
  """One gradient step on the weighted pixel loss; metrics ``loss``, ``pixel_accuracy``."""
  images, masks = batch["image"], batch["label"]
  augment_key, dropout_key = jax.random.split(key)
  if augment_config.active:
    images, masks = augment(augment_key, images, masks, augment_config,
                            ignore_label, axis_name=axis_name)
  if axis_name is not None:  # A different dropout mask on every device.
    dropout_key = jax.random.fold_in(dropout_key, lax.axis_index(axis_name))
  psum = (lambda x: x) if axis_name is None else functools.partial(
      lax.psum, axis_name=axis_name)
  devices = 1 if axis_name is None else lax.axis_size(axis_name)

  def loss_fn(params):
    logits, batch_stats = apply_model(state, params, images, train=True,
                                 key=dropout_key, axis_name=axis_name)
    losses, weights = pixel_losses(logits, masks, class_weights, ignore_label)
    total = jnp.sum(losses * weights)
    # Per device, the share of the global mean whose pmean is the global mean.
    loss = _ratio(total, psum(jnp.sum(weights)) / devices)
    valid = masks != ignore_label
    hits = jnp.sum((jnp.argmax(logits, -1) == masks) & valid)
    metrics = {"loss": _ratio(psum(total), psum(jnp.sum(weights))),
               "pixel_accuracy": _ratio(psum(hits), psum(jnp.sum(valid)))}
    return loss, (batch_stats, metrics)

  grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads = lax.pmean(grads, axis_name)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, metrics


def eval_step(state: TrainState, batch: dict[str, jax.Array],
              key: jax.Array | None = None, *,
              class_weights: Sequence[float] | None = None,
              ignore_label: int = IGNORE_LABEL,
              axis_name: str | None = None) -> dict[str, Any]:
  """``loss`` (a weighted pixel ``Average``) and the ``ConfusionMatrix`` of the batch, summed over devices.

  Pixels labelled ``ignore_label`` and every pixel of a padded example
  (``mask`` 0) count in neither.
  """
  del key  # Evaluation is deterministic and never augments.
  logits, _ = apply_model(state, state.params, batch["image"], train=False)
  masks = batch["label"]
  example_mask = batch.get("mask", jnp.ones(masks.shape[:1], jnp.float32))
  losses, weights = pixel_losses(logits, masks, class_weights, ignore_label)
  weights = weights * example_mask[:, None, None]
  sums = {"loss": Average.of(losses, weights),
          "confusion": ConfusionMatrix.of(masks, jnp.argmax(logits, -1),
                                          logits.shape[-1], example_mask)}
  if axis_name is not None:
    sums = lax.psum(sums, axis_name)
  return sums
