"""Mergeable metrics: sums that do not care how a split was batched or padded."""

import jax.numpy as jnp
import numpy as np
import pytest

from dlcore import metrics
from dlcore.metrics import Average


def test_merged_batches_give_the_mean_of_every_real_example():
  values = np.random.default_rng(0).normal(size=37).astype(np.float32)
  total = None
  for start in range(0, 37, 16):  # 16, 16 and 5 real rows, padded to 16.
    rows = np.arange(start, start + 16)
    mask = (rows < 37).astype(np.float32)
    batch = np.where(mask > 0, values[np.minimum(rows, 36)], 1e6)
    total = metrics.merge(total, {"x": Average.of(jnp.asarray(batch),
                                                  jnp.asarray(mask))})
  assert float(total["x"].count) == 37.0
  assert metrics.compute(total)["x"] == pytest.approx(float(np.mean(values)),
                                                      rel=1e-6)


def test_a_per_example_mask_covers_every_pixel_of_the_example():
  values = jnp.arange(12.0).reshape(3, 2, 2)  # Three examples of 4 pixels.
  average = Average.of(values, jnp.array([1.0, 0.0, 1.0]))
  assert float(average.count) == 8.0
  assert average.compute() == pytest.approx((0 + 1 + 2 + 3 + 8 + 9 + 10 + 11)
                                            / 8)


def test_a_per_pixel_mask_weighs_pixels_alone():
  values = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  mask = jnp.array([[1.0, 0.0], [1.0, 1.0]])  # One pixel is padding.
  assert Average.of(values, mask).compute() == pytest.approx(8.0 / 3.0)
