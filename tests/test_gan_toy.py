"""The classic GAN's toy problem: a ring of 8 Gaussians in 2-D."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from dlcore.adversarial import create_gan_state, gan_step, sample

RADIUS, STD = 0.8, 0.02  # Inside the generator's tanh range.
CENTERS = RADIUS * jnp.stack([jnp.cos(jnp.arange(8) * jnp.pi / 4),
                              jnp.sin(jnp.arange(8) * jnp.pi / 4)], -1)


def _mixture(key, n):
  mode_key, noise_key = jax.random.split(key)
  modes = jax.random.randint(mode_key, (n,), 0, 8)
  return CENTERS[modes] + STD * jax.random.normal(noise_key, (n, 2))


@pytest.mark.slow
def test_short_run_covers_most_of_the_eight_modes():
  state = create_gan_state("mlp", (2,), jax.random.PRNGKey(0), latent_dim=8,
                           g_tx=optax.adam(1e-3, b1=0.5),
                           d_tx=optax.adam(1e-3, b1=0.5))

  def body(state, key):
    data_key, step_key = jax.random.split(key)
    return gan_step(state, {"image": _mixture(data_key, 128)}, step_key)

  state, metrics = jax.jit(lambda s, k: lax.scan(
      body, s, jax.random.split(k, 2000)))(state, jax.random.PRNGKey(1))
  assert np.all(np.isfinite(metrics["d_loss"]))
  points = np.asarray(sample(state, jax.random.normal(jax.random.PRNGKey(2),
                                                      (1000, 8))))
  distances = np.linalg.norm(points[:, None] - np.asarray(CENTERS)[None], axis=-1)
  near = distances.min(1) < 5 * STD
  per_mode = np.bincount(distances.argmin(1)[near], minlength=8)
  assert np.sum(per_mode >= 10) >= 6, per_mode  # A mode counts at >= 1% of samples.
  assert near.mean() > 0.5  # Most samples are on a mode, not between.
