"""gan_step: metrics by hand, key hygiene, what each update touches, averaging."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.adversarial import (GANState, create_gan_state, gan_step, sample,
                                step_keys)
from dlcore.adversarial.losses import LOSSES
from dlcore.adversarial.steps import discriminator_update, generator_update
from dlcore.models.gan import DCGAN_SIZES, create_gan_models
from dlcore.state import TrainState

SHAPE = (8, 8, 1)


def _batch(size=8, key=1):
  images = jax.random.uniform(jax.random.PRNGKey(key), (size, *SHAPE)) * 2 - 1
  return {"image": images, "label": jnp.arange(size) % 10}


def _key_bytes(keys) -> list[bytes]:
  data = np.asarray(jax.random.key_data(keys)).reshape(-1, 2)
  return [row.tobytes() for row in data]


def _equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(x, y)), a, b)))


@pytest.mark.parametrize("n_critic,with_penalty", [(1, False), (5, True)])
def test_step_keys_are_pairwise_distinct(n_critic, with_penalty):
  named = step_keys(jax.random.PRNGKey(0), n_critic, with_penalty)
  assert named["critic_noise"].shape[0] == n_critic
  assert ("critic_interpolation" in named) == with_penalty
  drawn = [k for step in range(3)  # The loop's per-step keys, as train_loop makes them.
           for keys in step_keys(jax.random.fold_in(jax.random.PRNGKey(0), step),
                                 n_critic, with_penalty).values()
           for k in _key_bytes(keys)]
  assert len(drawn) == 3 * (n_critic * (2 if with_penalty else 1) + 1)
  assert len(set(drawn)) == len(drawn)


def test_every_draw_inside_gan_step_uses_its_own_key(monkeypatch):
  """Records, at run time, the key of every random draw the compiled step makes."""
  state = create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch, key = _batch(), jax.random.PRNGKey(7)
  used = []
  for name in ("normal", "uniform"):
    original = getattr(jax.random, name)

    def record(key, *args, _original=original, **kwargs):
      jax.debug.callback(lambda data: used.extend(_key_bytes(data)),
                         jax.random.key_data(key))
      return _original(key, *args, **kwargs)
    monkeypatch.setattr(jax.random, name, record)
  step = jax.jit(functools.partial(gan_step, loss="wgan-gp", n_critic=2))
  jax.block_until_ready(step(state, batch, key))
  jax.effects_barrier()
  monkeypatch.undo()
  # 2 critic noises + 2 interpolations + 1 generator noise, all distinct,
  # and exactly the keys step_keys names.
  assert len(used) == 5
  assert len(set(used)) == 5
  expected = step_keys(key, 2, True)
  assert set(used) == {k for keys in expected.values() for k in _key_bytes(keys)}


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_each_update_leaves_the_other_network_bit_identical(loss):
  spec = LOSSES[loss]
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch = _batch()
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  after_d, _ = jax.jit(functools.partial(
      discriminator_update, spec=spec))(
          state, batch["image"], batch["label"], noise_key=keys[0],
          interpolation_key=keys[1])
  assert _equal(after_d.generator, state.generator)  # Params and BN statistics.
  assert not _equal(after_d.discriminator.params, state.discriminator.params)

  after_g, _ = jax.jit(functools.partial(
      generator_update, batch_size=8, spec=spec))(
          after_d, labels=batch["label"], noise_key=keys[2])
  assert _equal(after_g.discriminator, after_d.discriminator)
  assert not _equal(after_g.generator.params, after_d.generator.params)
  # The running statistics move by BatchNorm's momentum rule (0.9 in DCGAN)
  # towards the biased batch statistics of each BatchNorm's input.
  z = jax.random.normal(keys[2], (8, state.latent_dim))
  g = after_d.generator
  _, captured = g.apply_fn(
      {"params": g.params, "batch_stats": g.batch_stats}, z, batch["label"],
      train=True, capture_intermediates=True,
      mutable=["batch_stats", "intermediates"])
  outputs = captured["intermediates"]
  inputs = {"BatchNorm_0": outputs["Dense_0"]["__call__"][0],
            "BatchNorm_1": outputs["ConvTranspose_0"]["__call__"][0]}
  assert set(inputs) == set(g.batch_stats)
  for name, x in inputs.items():
    old, new = g.batch_stats[name], after_g.generator.batch_stats[name]
    channels = old["mean"].shape[0]
    x = np.asarray(x, np.float64).reshape((-1, channels))
    np.testing.assert_allclose(new["mean"], 0.9 * old["mean"] + 0.1 * x.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new["var"], 0.9 * old["var"] + 0.1 * x.var(0),
                               rtol=1e-5, atol=1e-6)


TINY_SHAPE = (2, 2, 1)  # Images of 4 pixels, from noise of 4 dimensions.


class ScaledNoise(nn.Module):
  """A generator with images known from the noise: ``G(z) = s * z`` ``[B, 2, 2, 1]``."""

  @nn.compact
  def __call__(self, z, labels=None, train=False, axis_name=None):
    del labels, train, axis_name
    scale = self.param("scale", nn.initializers.constant(1.0), ())
    return scale * z.reshape((z.shape[0], *TINY_SHAPE))


class QuadraticCritic(nn.Module):
  """A discriminator with logits known by hand: ``D(x) = w * sum_pixels x^2 + c``."""

  @nn.compact
  def __call__(self, x, labels=None, train=False, axis_name=None):
    del labels, train, axis_name
    w = self.param("w", nn.initializers.constant(-0.5), ())
    c = self.param("c", nn.initializers.constant(1.5), ())
    return w * jnp.sum(x.reshape((x.shape[0], -1)) ** 2, -1) + c


D_LR, G_LR, GP_WEIGHT = 0.02, 0.05, 2.0
# Real images with sum x^2 of 0.3, 2.19, 0.55 and 2.26: logits r = 1.5 - 0.5
# sum x^2 of 1.35, 0.405, 1.225 and 0.37, so the hinge's relu(1 - r) is
# active on two of them; with the first critic noise one fake logit is below
# -1, so relu(1 + f) is zero there.
REAL = np.array([[0.2, 0.1, -0.3, 0.4], [0.9, -0.8, 0.7, 0.5],
                 [-0.5, 0.5, 0.2, -0.1], [1.0, 0.6, -0.9, 0.3]],
                np.float32).reshape((4, *TINY_SHAPE))
softplus = lambda t: np.logaddexp(0.0, t)
sigmoid = lambda t: 1 / (1 + np.exp(-t))
# Per loss: the discriminator loss of logits (r, f), its derivatives
# B * (dL/dr, dL/df), the generator loss of f and B * dL/df.
HAND_LOSSES = {
    "minimax": (lambda r, f: np.mean(softplus(-r)) + np.mean(softplus(f)),
                lambda r, f: (-sigmoid(-r), sigmoid(f)),
                lambda f: -np.mean(softplus(f)), lambda f: -sigmoid(f)),
    "nonsaturating": (lambda r, f: np.mean(softplus(-r)) + np.mean(softplus(f)),
                      lambda r, f: (-sigmoid(-r), sigmoid(f)),
                      lambda f: np.mean(softplus(-f)), lambda f: -sigmoid(-f)),
    "hinge": (lambda r, f: np.mean(np.maximum(0, 1 - r) + np.maximum(0, 1 + f)),
              lambda r, f: (-1.0 * (r < 1), 1.0 * (f > -1)),
              lambda f: -np.mean(f), lambda f: -np.ones_like(f)),
    "wgan-gp": (lambda r, f: np.mean(f) - np.mean(r),
                lambda r, f: (-np.ones_like(r), np.ones_like(f)),
                lambda f: -np.mean(f), lambda f: -np.ones_like(f)),
}


def _tiny_gan_state() -> GANState:
  """``ScaledNoise`` and ``QuadraticCritic`` on plain SGD; 4-dimensional noise."""
  def train_state(model, lr):
    params = model.init(jax.random.PRNGKey(0),
                        jnp.zeros((1, *TINY_SHAPE)))["params"]
    return TrainState.create(apply_fn=model.apply, params=params,
                             tx=optax.sgd(lr), batch_stats={})
  return GANState(generator=train_state(ScaledNoise(), G_LR),
                  discriminator=train_state(QuadraticCritic(), D_LR),
                  step=jnp.zeros((), jnp.int32), latent_dim=4)


def _hand_gan_step(loss, n_critic, key):
  """``(metrics, (w, c), s)`` of one ``gan_step`` of the tiny GAN, in float64 numpy.

  The noise is the one ``gan_step`` draws: ``step_keys`` names its keys.
  """
  d_loss_of, d_grad_of, g_loss_of, g_grad_of = HAND_LOSSES[loss]
  penalised = loss == "wgan-gp"
  keys = step_keys(key, n_critic, penalised)
  real = REAL.astype(np.float64)
  squares = lambda x: np.sum(x.reshape((len(x), -1)) ** 2, -1)
  noise = lambda k: np.asarray(jax.random.normal(k, (4, 4)),
                               np.float64).reshape(real.shape)
  reported = sigmoid if loss in ("minimax", "nonsaturating") else lambda t: t
  w, c, s = -0.5, 1.5, 1.0
  updates = []
  for i in range(n_critic):
    fake = s * noise(keys["critic_noise"][i])
    r, f = w * squares(real) + c, w * squares(fake) + c
    metrics = {"d_loss": d_loss_of(r, f), "d_real": np.mean(reported(r)),
               "d_fake": np.mean(reported(f))}
    d_r, d_f = d_grad_of(r, f)
    grad_w = np.mean(d_r * squares(real) + d_f * squares(fake))
    grad_c = np.mean(d_r + d_f)
    if penalised:  # grad_x D(x_hat) = 2 w x_hat: its norm is 2 |w| ||x_hat||.
      eps = np.asarray(jax.random.uniform(keys["critic_interpolation"][i],
                                          (4, 1, 1, 1)), np.float64)
      lengths = np.sqrt(squares(eps * real + (1 - eps) * fake))
      norms = 2 * abs(w) * lengths
      metrics["gradient_penalty"] = np.mean((norms - 1) ** 2)
      metrics["d_loss"] += GP_WEIGHT * metrics["gradient_penalty"]
      grad_w += GP_WEIGHT * np.mean(2 * (norms - 1) * 2 * np.sign(w) * lengths)
    updates.append(metrics)
    w, c = w - D_LR * grad_w, c - D_LR * grad_c
  metrics = {name: np.mean([m[name] for m in updates]) for name in updates[0]}
  z_squares = squares(noise(keys["generator_noise"]))
  f = w * s ** 2 * z_squares + c
  metrics["g_loss"] = g_loss_of(f)
  s -= G_LR * np.mean(g_grad_of(f) * 2 * w * s * z_squares)
  return metrics, (w, c), s


@pytest.mark.parametrize("loss,n_critic", [
    ("minimax", 1), ("nonsaturating", 1), ("hinge", 1), ("wgan-gp", 1),
    ("wgan-gp", 5)])
def test_gan_step_metrics_and_updates_match_hand_computation(loss, n_critic):
  """Every metric, and both networks' new parameters, at known logits."""
  step = jax.jit(functools.partial(gan_step, loss=loss, n_critic=n_critic,
                                   gp_weight=GP_WEIGHT))
  key = jax.random.PRNGKey(5)
  new_state, metrics = step(_tiny_gan_state(), {"image": REAL}, key)
  expected, (w, c), s = _hand_gan_step(loss, n_critic, key)
  assert set(metrics) == set(expected)
  for name, value in expected.items():
    assert float(metrics[name]) == pytest.approx(value, rel=1e-5, abs=1e-6), name
  d_params = new_state.discriminator.params
  assert (float(d_params["w"]), float(d_params["c"])) == pytest.approx((w, c),
                                                                        rel=1e-5)
  assert float(new_state.generator.params["scale"]) == pytest.approx(s, rel=1e-5)
  assert int(new_state.step) == 1
  assert int(new_state.discriminator.step) == n_critic


@pytest.mark.parametrize("n_critic,loops", [(1, False), (2, True)])
def test_only_several_critic_updates_are_a_loop(n_critic, loops):
  """One critic update is traced inline, several as a scan.

  XLA's CPU backend compiles the convolutions of a scan body, even of a
  length-1 one, in layouts its fast convolution code does not take.
  """
  state = create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0))
  jaxpr = jax.make_jaxpr(functools.partial(gan_step, n_critic=n_critic))(
      state, _batch(), jax.random.PRNGKey(1))
  assert any(e.primitive.name == "scan" for e in jaxpr.eqns) == loops


def test_two_devices_on_half_batches_compute_what_one_does_on_the_whole():
  """Under vmap with an axis name (a stand-in for two devices): noise, BatchNorm and gradients are global."""
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch, key = _batch(), jax.random.PRNGKey(1)
  halves = jax.tree.map(lambda x: x.reshape((2, 4, *x.shape[1:])), batch)
  replicated = jax.tree.map(lambda x: jnp.stack([x, x]), state)
  two = jax.jit(jax.vmap(functools.partial(gan_step, axis_name="devices"),
                         in_axes=(0, 0, None), axis_name="devices"))
  one = jax.jit(gan_step)
  (split_state, split_metrics), (whole_state, whole_metrics) = (
      two(replicated, halves, key), one(state, batch, key))
  for device in range(2):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a[device], b, rtol=1e-4, atol=1e-6), split_state, whole_state)
  for name, value in whole_metrics.items():
    np.testing.assert_allclose(split_metrics[name][0], value, rtol=1e-5)
  # A step that ignored the other device would not: half a batch moves less.
  lone, _ = one(state, jax.tree.map(lambda x: x[:4], batch), key)
  assert not np.allclose(lone.generator.params["Dense_0"]["kernel"],
                         whole_state.generator.params["Dense_0"]["kernel"],
                         atol=1e-6)


def test_dcgan_makes_every_supported_size_and_rejects_others():
  for side in DCGAN_SIZES:
    for channels in (1, 3):
      generator, discriminator = create_gan_models("dcgan", (side, side, channels))
      z = jnp.zeros((2, 16))
      images, _ = jax.eval_shape(
          lambda z: generator.init_with_output(jax.random.PRNGKey(0), z), z)
      assert images.shape == (2, side, side, channels)
      logits, _ = jax.eval_shape(
          lambda x: discriminator.init_with_output(jax.random.PRNGKey(0), x),
          images)
      assert logits.shape == (2,)
  with pytest.raises(ValueError, match="cannot make 16x16 images; it supports 8x8, 28x28, 32x32"):
    create_gan_models("dcgan", (16, 16, 1))
  with pytest.raises(ValueError, match="unknown architecture 'vit'"):
    create_gan_models("vit", SHAPE)
  with pytest.raises(ValueError, match="unknown GAN loss 'lsgan'"):
    gan_step(create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0)), _batch(),
             jax.random.PRNGKey(0), loss="lsgan")


def test_samples_use_running_statistics_and_follow_their_labels():
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  labels = jnp.array([0, 1, 2])
  images = sample(state, jnp.ones((3, 64)), labels)
  assert images.shape == (3, *SHAPE)
  # BatchNorm in inference mode: an example alone comes out as in the batch.
  for i in range(3):
    alone = sample(state, jnp.ones((1, 64)), labels[i:i + 1])
    np.testing.assert_allclose(alone[0], images[i], rtol=1e-5, atol=1e-6)
  # The same noise under different labels makes different images.
  assert not np.allclose(images[0], images[1], atol=1e-3)
