"""GAN losses at known logits, and the gradient penalty against finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.adversarial import losses
from dlcore.adversarial.losses import LOSSES

ZEROS = jnp.zeros(4)


def test_half_probability_everywhere():
  """D = 1/2 everywhere: the minimax discriminator loss is log 4."""
  assert LOSSES["minimax"].discriminator(ZEROS, ZEROS) == pytest.approx(math.log(4))
  assert LOSSES["nonsaturating"].discriminator(ZEROS, ZEROS) == pytest.approx(
      math.log(4))
  assert LOSSES["minimax"].generator(ZEROS) == pytest.approx(-math.log(2))
  assert LOSSES["nonsaturating"].generator(ZEROS) == pytest.approx(math.log(2))
  assert LOSSES["hinge"].discriminator(ZEROS, ZEROS) == pytest.approx(2.0)
  assert LOSSES["wgan-gp"].discriminator(ZEROS, ZEROS) == pytest.approx(0.0)


def test_logistic_losses_at_known_logits():
  real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  d_real, d_fake = 1 / (1 + np.exp(-np.array(real))), 1 / (1 + np.exp(-np.array(fake)))
  expected_d = -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
  assert LOSSES["minimax"].discriminator(real, fake) == pytest.approx(expected_d, rel=1e-5)
  assert LOSSES["minimax"].generator(fake) == pytest.approx(
      np.mean(np.log(1 - d_fake)), rel=1e-5)
  assert LOSSES["nonsaturating"].generator(fake) == pytest.approx(
      -np.mean(np.log(d_fake)), rel=1e-5)


def test_logistic_losses_are_exact_at_extreme_logits():
  """softplus(1e4) = 1e4 and softplus(-1e4) = 0, where log(sigmoid) would be -inf."""
  huge = jnp.array([1e4, -1e4])
  assert float(LOSSES["minimax"].discriminator(huge, huge)) == 1e4
  assert float(LOSSES["nonsaturating"].generator(-huge)) == 5e3
  grad = jax.grad(LOSSES["nonsaturating"].generator)(-huge)
  np.testing.assert_array_equal(grad, [-0.5, 0.0])


def test_minimax_generator_saturates_where_nonsaturating_does_not():
  rejected = jnp.array([-10.0])  # D(G(z)) ~ 4.5e-5: the generator is caught.
  minimax = jax.grad(lambda f: LOSSES["minimax"].generator(f))(rejected)
  nonsat = jax.grad(lambda f: LOSSES["nonsaturating"].generator(f))(rejected)
  # d/df -softplus(f) = -sigmoid(f); d/df softplus(-f) = -sigmoid(-f).
  assert float(minimax[0]) == pytest.approx(-1 / (1 + math.exp(10)), rel=1e-5)
  assert float(nonsat[0]) == pytest.approx(-1 / (1 + math.exp(-10)), rel=1e-6)


def test_wasserstein_and_hinge_at_known_logits():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 0.5])
  assert LOSSES["wgan-gp"].discriminator(real, fake) == pytest.approx(-0.25 - 1.0)
  assert LOSSES["wgan-gp"].generator(fake) == pytest.approx(0.25)
  # relu(1 - r) = [0, 1]; relu(1 + f) = [0, 1.5].
  assert LOSSES["hinge"].discriminator(real, fake) == pytest.approx(0.5 + 0.75)
  assert LOSSES["hinge"].generator(fake) == pytest.approx(0.25)


def test_default_critic_steps():
  assert {name: loss.default_n_critic for name, loss in LOSSES.items()} == {
      "minimax": 1, "nonsaturating": 1, "wgan-gp": 5, "hinge": 1,
      "least-squares": 1}


def test_gradient_penalty_matches_finite_differences():
  w = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
  critic = lambda x: jnp.sum(jnp.tanh(x.reshape((x.shape[0], -1)) @ w), -1)
  real = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 3))
  fake = jax.random.normal(jax.random.PRNGKey(2), (3, 2, 3))
  key = jax.random.PRNGKey(3)
  penalty = losses.gradient_penalty(critic, real, fake, key)

  eps = np.asarray(jax.random.uniform(key, (3, 1, 1)), np.float64)
  x_hat = eps * np.asarray(real, np.float64) + (1 - eps) * np.asarray(fake, np.float64)
  w64 = np.asarray(w, np.float64)
  critic64 = lambda x: np.sum(np.tanh(x.reshape(-1) @ w64))
  h, norms = 1e-5, []
  for example in x_hat:
    grad = np.zeros(example.size)
    for j in range(example.size):
      step = np.zeros(example.size)
      step[j] = h
      grad[j] = (critic64(example.reshape(-1) + step)
                 - critic64(example.reshape(-1) - step)) / (2 * h)
    norms.append(np.linalg.norm(grad))
  expected = np.mean((np.array(norms) - 1.0) ** 2)
  assert float(penalty) == pytest.approx(expected, rel=1e-4)
  assert expected > 0.01  # Not a trivially zero penalty.
