"""The segmentation workload, registered when ``dlcore.segmentation`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads segmentation``.

``segmentation`` times one train step of the default U-Net of
``experiments/segment.py`` (depth 3, width 8, BatchNorm) with Adam (lr
1e-3) on canvas-shaped (32x32x1) random images and uniform random masks
of 11 classes, against the hand-written Flax + Optax step
(``segmentation_step``) on the same model, optimizer and init
key. Every pixel is labelled and augmentation is off, so both compute the
same loss, gradients and update. Items are images.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import workloads
from benchmarks.workloads import (LEARNING_RATE, TrainState, Workload, in_dtype,
                                  register)
from dlcore import state as dlcore_state
from dlcore.models import UNet
from dlcore.segmentation import train_step

SHAPE, NUM_CLASSES = (32, 32, 1), 11


def _batch(rng: np.random.Generator, batch_size: int):
  return {"image": rng.random((batch_size,) + SHAPE, dtype=np.float32),
          "label": rng.integers(0, NUM_CLASSES, (batch_size,) + SHAPE[:2])
                   .astype(np.int32)}


def _model(dtype: str):
  return in_dtype(UNet(NUM_CLASSES, depth=3, width=8), dtype)


def _dlcore(batch, dtype, key):
  state = dlcore_state.create_train_state(
      _model(dtype), optax.adam(LEARNING_RATE), batch["image"][:1], key)
  return jax.jit(train_step, donate_argnums=0), state


def _baseline(batch, dtype, key):
  state = workloads.create_train_state(_model(dtype), optax.adam(LEARNING_RATE),
                                      batch["image"], key)
  return jax.jit(segmentation_step, donate_argnums=0), state


register(Workload(name="segmentation", description="U-Net (depth 3, width 8, "
                  "BatchNorm) per-pixel cross-entropy, 32x32 canvases, 11 "
                  "classes", make_batch=_batch, dlcore=_dlcore,
                  baseline=_baseline, batch_size=32, quick_batch_size=8))


# The hand-written segmentation step: per-pixel cross-entropy and a
# BatchNorm U-Net, as the Flax examples write a train step.


def segmentation_step(state: TrainState, batch, key):
  """One Adam step of per-pixel cross-entropy, BatchNorm statistics updated.

  Every pixel is labelled (no ignore label), so the loss is the plain mean
  over ``[B, H, W]``.
  """
  del key  # No dropout, no augmentation.
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, mutable=["batch_stats"])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return loss, (accuracy, updates["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "pixel_accuracy": accuracy}
