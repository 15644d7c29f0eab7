"""The VAE: ELBO terms by hand, and training improves the test ELBO on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dlcore.vae import create_vae_state, vae_eval_step, vae_step


def test_elbo_terms_match_hand_computation():
  """With a zero-output decoder and encoder the terms have closed forms."""
  state = create_vae_state((2, 2, 1), jax.random.PRNGKey(0), latent_dim=3)
  zero = jax.tree.map(jnp.zeros_like, state.params)
  images = jnp.array([[[[0.0], [1.0]], [[0.25], [1.0]]]])
  sums = vae_eval_step(state.replace(params=zero), {"image": images},
                       jax.random.PRNGKey(1))
  # q(z|x) = N(0, 1) = p(z): KL 0. Logits 0: BCE(0, x) = log 2 for every x.
  assert float(sums["kl"].total) == pytest.approx(0.0, abs=1e-6)
  assert float(sums["reconstruction"].total) == pytest.approx(-4 * np.log(2),
                                                              rel=1e-5)
  assert float(sums["reconstruction"].count) == 1.0


def _padded(shape, block) -> jax.Array:
  """Zeros of ``shape`` with ``block`` in the leading corner."""
  array = np.zeros(shape, np.float32)
  array[tuple(slice(0, n) for n in np.shape(block))] = block
  return jnp.asarray(array)


def _affine_vae_params(params, mean, log_var, decoder):
  """``params`` of a VAE on 2-pixel images with 2 latents, made affine.

  Each ``(kernel, bias)`` gives ``mean = x K + b``, ``log_var = x K + b``
  (images are in [0, 1], so the encoder's ReLUs pass them) and ``outputs =
  z K + b`` (the decoder's first layer keeps ``relu(z)`` and ``relu(-z)``,
  its last one takes their difference); a Gaussian ``log_scale`` is kept.
  """
  def layer(old, kernel, bias=0.0):
    return {"kernel": _padded(old["kernel"].shape, kernel),
            "bias": _padded(old["bias"].shape, bias)}
  encoder, decoder_layers, eye = params["encoder"], params["decoder"], np.eye(2)
  return {**params,
          "encoder": {"Dense_0": layer(encoder["Dense_0"], eye),
                      "Dense_1": layer(encoder["Dense_1"], eye),
                      "mean": layer(encoder["mean"], *mean),
                      "log_var": layer(encoder["log_var"], *log_var)},
          "decoder": {"Dense_0": layer(decoder_layers["Dense_0"],
                                       np.hstack([eye, -eye])),
                      "Dense_1": layer(decoder_layers["Dense_1"], np.eye(4)),
                      "Dense_2": layer(decoder_layers["Dense_2"],
                                       np.vstack([decoder[0], -decoder[0]]),
                                       decoder[1])}}


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_step_metrics_match_hand_computation_through_the_sampled_latent(
    likelihood):
  """``z = mean + exp(log_var / 2) eps`` with the step's noise, decoded by hand."""
  state = create_vae_state((1, 2, 1), jax.random.PRNGKey(0), latent_dim=2,
                           likelihood=likelihood)
  if likelihood == "gaussian":
    assert float(jnp.exp(state.params["log_scale"])) == pytest.approx(0.1)
  encoder_mean = (np.array([[1.0, -0.5], [0.3, 2.0]]), np.array([0.2, -0.4]))
  encoder_log_var = (np.array([[-1.0, 0.5], [0.0, -2.0]]), np.array([0.3, 0.1]))
  decoder = (np.array([[1.5, -0.7], [0.4, 2.0]]), np.array([-0.2, 0.6]))
  state = state.replace(params=_affine_vae_params(
      state.params, encoder_mean, encoder_log_var, decoder))
  x = np.array([[0.0, 1.0], [0.25, 0.5], [0.9, 0.1]])
  key = jax.random.PRNGKey(3)
  _, metrics = jax.jit(vae_step)(
      state, {"image": jnp.asarray(x.reshape((3, 1, 2, 1)), jnp.float32)}, key)

  affine = lambda inputs, kernel_bias: inputs @ kernel_bias[0] + kernel_bias[1]
  mean, log_var = affine(x, encoder_mean), affine(x, encoder_log_var)
  eps = np.asarray(jax.random.normal(key, (3, 2)), np.float64)
  outputs = affine(mean + np.exp(log_var / 2) * eps, decoder)
  if likelihood == "bernoulli":  # x log sigmoid(o) + (1 - x) log sigmoid(-o)
    log_p = np.sum(x * outputs - np.logaddexp(0.0, outputs), -1)
  else:  # log N(x; sigmoid(o), 0.1^2)
    residual = (x - 1 / (1 + np.exp(-outputs))) / 0.1
    log_p = np.sum(-0.5 * residual ** 2 - np.log(0.1 * np.sqrt(2 * np.pi)), -1)
  kl = 0.5 * np.sum(np.exp(log_var) + mean ** 2 - 1 - log_var, -1)
  expected = {"reconstruction": np.mean(log_p), "kl": np.mean(kl),
              "elbo": np.mean(log_p - kl), "loss": np.mean(kl - log_p)}
  assert set(metrics) == set(expected)
  for name, value in expected.items():
    assert float(metrics[name]) == pytest.approx(value, rel=1e-5), name


def test_unknown_likelihood_is_refused():
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
    create_vae_state((8, 8, 1), jax.random.PRNGKey(0), likelihood="poisson")


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_improves_on_digits(likelihood, digits):
  data = digits
  state = create_vae_state((8, 8, 1), jax.random.PRNGKey(0),
                           likelihood=likelihood)
  test = {"image": jnp.asarray(data.test.images)}
  evaluate = jax.jit(lambda s: vae_eval_step(s, test, jax.random.PRNGKey(9)))
  before = evaluate(state)["elbo"].compute()
  images = jnp.asarray(data.train.images)

  def body(state, key):
    batch_key, step_key = jax.random.split(key)
    rows = jax.random.randint(batch_key, (64,), 0, len(images))
    return vae_step(state, {"image": images[rows]}, step_key)

  state, metrics = jax.jit(lambda s, k: lax.scan(
      body, s, jax.random.split(k, 600)))(state, jax.random.PRNGKey(1))
  after = evaluate(state)["elbo"].compute()
  assert after > before + 10.0  # Nats per image.
  assert float(jnp.mean(metrics["kl"][-50:])) > 1.0  # The latents are used.
