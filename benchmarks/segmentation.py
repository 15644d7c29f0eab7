"""The segmentation workload, registered when ``dlcore.segmentation`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads segmentation``.

``segmentation`` times one train step of the default U-Net of
``experiments/segment.py`` (depth 3, width 8, BatchNorm) with Adam (lr
1e-3) on canvas-shaped (32x32x1) random images and uniform random masks
of 11 classes, against the hand-written Flax + Optax step
(``baseline.segmentation_step``) on the same model, optimizer and init
key. Every pixel is labelled and augmentation is off, so both compute the
same loss, gradients and update. Items are images.
"""

import jax
import numpy as np
import optax

from benchmarks import baseline
from benchmarks.workloads import LEARNING_RATE, Workload, in_dtype, register
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
  state = baseline.create_train_state(_model(dtype), optax.adam(LEARNING_RATE),
                                      batch["image"], key)
  return jax.jit(baseline.segmentation_step, donate_argnums=0), state


register(Workload(name="segmentation", description="U-Net (depth 3, width 8, "
                  "BatchNorm) per-pixel cross-entropy, 32x32 canvases, 11 "
                  "classes", make_batch=_batch, dlcore=_dlcore,
                  baseline=_baseline, batch_size=32, quick_batch_size=8))
