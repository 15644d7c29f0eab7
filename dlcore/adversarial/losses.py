"""GAN losses as pure functions of discriminator logits, and the gradient penalty.

Usage::

  loss = LOSSES["nonsaturating"]                     # or "least-squares", ...
  d_loss = loss.discriminator(real_logits, fake_logits)   # scalar
  g_loss = loss.generator(fake_logits)                     # scalar
  penalty = gradient_penalty(critic, real, fake, key)      # WGAN-GP only

``r = D(x)`` are the logits on real examples and ``f = D(G(z))`` those on
generated ones, each ``[B]``; every loss is a mean over the batch. For the
logistic losses ``D`` is the probability ``sigmoid(logit)`` that an input
is real, and ``log sigmoid(t) = -softplus(-t)``, ``log(1 - sigmoid(t)) =
-softplus(t)`` keep them finite at any logit.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from dlcore import parallel

Loss = Callable[..., jax.Array]


def logistic_discriminator(real: jax.Array, fake: jax.Array) -> jax.Array:
  """``-mean log D(x) - mean log(1 - D(G(z)))`` (both logistic losses' D).

  Logits 0 everywhere (D = 1/2) give ``2 log 2 = log 4``.
  """
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def minimax_generator(fake: jax.Array) -> jax.Array:
  """The original saturating ``mean log(1 - D(G(z)))`` (minimised by G).

  Its gradient vanishes where D confidently rejects the samples. Logits 0
  give ``-log 2``.
  """
  return -jnp.mean(jax.nn.softplus(fake))


def nonsaturating_generator(fake: jax.Array) -> jax.Array:
  """The non-saturating ``-mean log D(G(z))``; logits 0 give ``log 2``."""
  return jnp.mean(jax.nn.softplus(-fake))


def wasserstein_discriminator(real: jax.Array, fake: jax.Array) -> jax.Array:
  """The critic's ``mean D(G(z)) - mean D(x)`` (plus ``lambda * penalty`` in the step)."""
  return jnp.mean(fake) - jnp.mean(real)


def wasserstein_generator(fake: jax.Array) -> jax.Array:
  """``-mean D(G(z))``; also the generator loss of the hinge GAN."""
  return -jnp.mean(fake)


def hinge_discriminator(real: jax.Array, fake: jax.Array) -> jax.Array:
  """``mean max(0, 1 - D(x)) + mean max(0, 1 + D(G(z)))``; logits 0 give 2."""
  return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))


def least_squares_discriminator(real: jax.Array, fake: jax.Array) -> jax.Array:
  """LSGAN's ``mean (D(x) - 1)^2 + mean D(G(z))^2`` (Mao et al., 2017; CycleGAN's default).

  ``D`` outputs raw scores (targets 1 for real, 0 for fake); logits 0 give 1.
  """
  return jnp.mean((real - 1.0) ** 2) + jnp.mean(fake ** 2)


def least_squares_generator(fake: jax.Array) -> jax.Array:
  """LSGAN's ``mean (D(G(z)) - 1)^2``; logits 0 give 1."""
  return jnp.mean((fake - 1.0) ** 2)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, key: jax.Array, *,
                     axis_name: str | None = None) -> jax.Array:
  """WGAN-GP's ``mean_i (||grad_x D(x_hat_i)||_2 - 1)^2`` (Gulrajani et al., 2017).

  ``x_hat_i = e_i x_i + (1 - e_i) G(z_i)`` with ``e_i ~ U[0, 1]`` drawn
  from ``key``, one per example; ``critic`` maps ``[B, ...]`` to ``[B]``
  logits, examples independently (so summing its outputs gives each
  example's input gradient). With ``axis_name`` set, ``e`` is this
  device's rows of the draw one device would make for the global batch.
  """
  eps = parallel.shard_of_global_draw(
      jax.random.uniform, key, (real.shape[0],) + (1,) * (real.ndim - 1),
      axis_name)
  interpolates = eps * real + (1.0 - eps) * fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(interpolates)
  norms = jnp.sqrt(jnp.sum(grads.reshape((grads.shape[0], -1)) ** 2, -1) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


class GanLoss(NamedTuple):
  """A discriminator loss, a generator loss, and how to read the logits."""
  discriminator: Loss
  generator: Loss
  logistic: bool  # Report D as probabilities sigmoid(logit).
  gradient_penalty: bool
  default_n_critic: int


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(logistic_discriminator, minimax_generator, True, False, 1),
    "nonsaturating": GanLoss(logistic_discriminator, nonsaturating_generator,
                             True, False, 1),
    "wgan-gp": GanLoss(wasserstein_discriminator, wasserstein_generator, False,
                       True, 5),
    "hinge": GanLoss(hinge_discriminator, wasserstein_generator, False, False, 1),
    "least-squares": GanLoss(least_squares_discriminator,
                             least_squares_generator, False, False, 1),
}
