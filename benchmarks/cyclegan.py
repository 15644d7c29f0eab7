"""The CycleGAN workload, registered when ``dlcore.cyclegan`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads cyclegan``.

One step updates both generators, then both discriminators through their
image pools (``cyclegan_step``, least-squares loss, cycle weight 10,
identity 0.5), at the default run's sizes (``CycleGanConfig``) on
32x32x3 images in [-1, 1]; items per step are the images of one domain.
The hand-written baseline (``baseline.cyclegan_step``) starts from the
same parameters, uses the same Adam (2e-4, beta1 0.5) for each network and
splits the step key as dlcore does, so both compute the same numbers.
"""

import jax
import numpy as np

from benchmarks import baseline
from benchmarks.workloads import Workload, register
from dlcore.cyclegan import (CycleGanConfig, create_cyclegan_state,
                                         cyclegan_step)

SHAPE = (32, 32, 3)
SPEC = CycleGanConfig().spec
POOL_SIZE = 50


def _images(rng: np.random.Generator, batch_size: int):
  draw = lambda: rng.random((batch_size,) + SHAPE, dtype=np.float32) * 2 - 1
  return {"image_a": draw(), "image_b": draw()}


def _dlcore(batch, dtype, key):
  del batch
  state = create_cyclegan_state(SPEC, SHAPE, key, pool_size=POOL_SIZE,
                                dtype=np.dtype(dtype))
  return jax.jit(cyclegan_step, donate_argnums=0), state


def baseline_states(state, dtype: str = "float32"):
  """``baseline.CycleGanStates`` from a dlcore state's initial parameters."""
  return baseline.create_cyclegan_states(
      SPEC.generator(SHAPE[-1], np.dtype(dtype)),
      SPEC.discriminator(np.dtype(dtype)),
      (state.generator_ab.params, state.generator_ba.params,
       state.discriminator_a.params, state.discriminator_b.params), SHAPE,
      pool_size=state.pool_a.size)


def _baseline(batch, dtype, key):
  _, state = _dlcore(batch, dtype, key)
  return jax.jit(baseline.cyclegan_step, donate_argnums=0), baseline_states(
      state, dtype)


register(Workload(name="cyclegan", description="CycleGAN (2 ResNet generators,"
                  " 2 PatchGANs, image pools), 32x32x3", make_batch=_images,
                  dlcore=_dlcore, baseline=_baseline, batch_size=4,
                  quick_batch_size=4, in_quick=False))
