"""The GAN train step: ``n_critic`` discriminator updates, then one generator update.

Usage::

  step = jax.jit(functools.partial(gan_step, loss="wgan-gp"))
  state, metrics = step(state, {"image": x, "label": y}, key)

``batch["image"]`` ``[B, H, W, C]`` holds real examples in the generator's
range [-1, 1]; ``batch["label"]`` ``[B]`` is read only by conditional GANs,
whose generated examples are conditioned on the real batch's labels. Each
of the ``n_critic`` discriminator updates (default: 5 for WGAN-GP, 1
otherwise) sees the same real batch and fresh generated samples; the
generator update then draws its own noise. ``step_keys`` splits the step's
key into one key per random draw (noise for every update, interpolation
coefficients for every gradient penalty), so no key is used twice.

Metrics: ``d_loss`` (including ``gp_weight * gradient_penalty`` for
WGAN-GP) and ``d_real = mean D(x)``, ``d_fake = mean D(G(z))`` (as
probabilities for the logistic losses, raw critic values otherwise),
averaged over the discriminator updates; ``g_loss``; and
``gradient_penalty`` for WGAN-GP.

With ``axis_name`` set (under ``jax.shard_map`` / ``jax.pmap``) each device
takes its own rows of the noise one device would draw for the whole batch
(``parallel.shard_of_global_draw``), the generator's BatchNorm statistics
are synchronised, and both networks' gradients and the metrics are averaged
with ``lax.pmean``: ``n`` devices compute what one device computes on the
global batch.
"""

import jax
import jax.numpy as jnp
from jax import lax

from dlcore import parallel
from dlcore.adversarial.losses import LOSSES, GanLoss, gradient_penalty
from dlcore.adversarial.state import GANState
from dlcore.objective import Metrics
from dlcore.state import TrainState


def loss_spec(loss: str) -> GanLoss:
  """The ``GanLoss`` registered as ``loss``."""
  if loss not in LOSSES:
    raise ValueError(f"unknown GAN loss {loss!r}; the registered ones are "
                     f"{', '.join(LOSSES)}")
  return LOSSES[loss]


def step_keys(key: jax.Array, n_critic: int,
              with_penalty: bool) -> dict[str, jax.Array]:
  """One key per random draw of a ``gan_step``, all distinct splits of ``key``.

  ``critic_noise`` ``[n_critic]``: noise for each discriminator update;
  ``critic_interpolation`` ``[n_critic]`` (only ``with_penalty``): each
  gradient penalty's interpolation coefficients; ``generator_noise``: the
  generator update's noise.
  """
  count = n_critic * (2 if with_penalty else 1) + 1
  keys = jax.random.split(key, count)
  named = {"critic_noise": keys[:n_critic], "generator_noise": keys[-1]}
  if with_penalty:
    named["critic_interpolation"] = keys[n_critic:2 * n_critic]
  return named


def _generate(g: TrainState, params, noise_key: jax.Array, batch_size: int,
              latent_dim: int, labels, axis_name):
  """``(images, new_batch_stats)`` of the generator in training mode.

  ``z [batch_size, latent_dim]``: this device's rows of the global draw.
  """
  z = parallel.shard_of_global_draw(jax.random.normal, noise_key,
                                    (batch_size, latent_dim), axis_name)
  variables = {"params": params, "batch_stats": g.batch_stats}
  if not g.has_batch_stats:
    return g.apply_fn(variables, z, labels, train=True), g.batch_stats
  images, updates = g.apply_fn(variables, z, labels, train=True,
                               axis_name=axis_name, mutable=["batch_stats"])
  return images, updates["batch_stats"]


def discriminator_update(state: GANState, real: jax.Array, labels, *,
                         noise_key: jax.Array,
                         interpolation_key: jax.Array | None, spec: GanLoss,
                         gp_weight: float = 10.0,
                         axis_name: str | None = None
                         ) -> tuple[GANState, Metrics]:
  """One discriminator step against fresh samples; the generator is untouched.

  ``interpolation_key`` draws the gradient penalty's coefficients when
  ``spec.gradient_penalty``; the generator runs in training mode (batch
  statistics) but its running statistics are not updated.
  """
  d = state.discriminator
  fake = lax.stop_gradient(_generate(
      state.generator, state.generator.params, noise_key, real.shape[0],
      state.latent_dim, labels, axis_name)[0])
  as_reported = jax.nn.sigmoid if spec.logistic else lambda t: t

  def loss_fn(params):
    critic = lambda x: d.apply_fn({"params": params}, x, labels, train=True)
    real_logits, fake_logits = critic(real), critic(fake)
    loss = spec.discriminator(real_logits, fake_logits)
    metrics = {"d_real": jnp.mean(as_reported(real_logits)),
               "d_fake": jnp.mean(as_reported(fake_logits))}
    if spec.gradient_penalty:
      metrics["gradient_penalty"] = gradient_penalty(
          critic, real, fake, interpolation_key, axis_name=axis_name)
      loss += gp_weight * metrics["gradient_penalty"]
    return loss, {"d_loss": loss, **metrics}

  grads, metrics = jax.grad(loss_fn, has_aux=True)(d.params)
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  return state.replace(discriminator=d.apply_gradients(grads=grads)), metrics


def generator_update(state: GANState, batch_size: int, labels, *,
                     noise_key: jax.Array, spec: GanLoss,
                     axis_name: str | None = None) -> tuple[GANState, Metrics]:
  """One generator step (and its BatchNorm statistics); the discriminator is untouched."""
  g, d = state.generator, state.discriminator

  def loss_fn(params):
    fake, batch_stats = _generate(g, params, noise_key, batch_size,
                                  state.latent_dim, labels, axis_name)
    fake_logits = d.apply_fn({"params": d.params}, fake, labels, train=True)
    return spec.generator(fake_logits), batch_stats

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      g.params)
  if axis_name is not None:
    grads, loss = lax.pmean((grads, loss), axis_name)
  g = g.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state.replace(generator=g), {"g_loss": loss}


def gan_step(state: GANState, batch: dict[str, jax.Array], key: jax.Array, *,
             loss: str = "nonsaturating", n_critic: int | None = None,
             gp_weight: float = 10.0,
             axis_name: str | None = None) -> tuple[GANState, Metrics]:
  """One GAN iteration; see the module docstring. Bind options with ``partial``."""
  spec = loss_spec(loss)
  n_critic = n_critic or spec.default_n_critic
  keys = step_keys(key, n_critic, spec.gradient_penalty)
  real = batch["image"]
  labels = batch["label"] if state.conditional else None

  def critic_step(state, draw_keys):
    return discriminator_update(
        state, real, labels, noise_key=draw_keys[0],
        interpolation_key=draw_keys[1] if spec.gradient_penalty else None,
        spec=spec, gp_weight=gp_weight, axis_name=axis_name)

  draws = (keys["critic_noise"],)
  if spec.gradient_penalty:
    draws += (keys["critic_interpolation"],)
  if n_critic == 1:
    # No loop around one update: XLA's CPU backend leaves the convolutions
    # of a scan body, even a length-1 one, in layouts its fast convolution
    # code does not take (DCGAN's step ran 4x slower).
    state, d_metrics = critic_step(state, [k[0] for k in draws])
  else:
    state, d_metrics = lax.scan(critic_step, state, draws)
  state, g_metrics = generator_update(
      state, real.shape[0], labels, noise_key=keys["generator_noise"],
      spec=spec, axis_name=axis_name)
  metrics = {**jax.tree.map(jnp.mean, d_metrics), **g_metrics}
  return state.replace(step=state.step + 1), metrics
