"""The VAE: ELBO terms by hand, and training improves the test ELBO on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dlcore.adversarial import create_vae_state, vae_eval_step, vae_step
from dlcore.data import load_dataset
from dlcore.errors import ConfigError
from dlcore.models.vae import VAE


def test_elbo_terms_match_hand_computation():
  """With a zero-output decoder and encoder the terms have closed forms."""
  state = create_vae_state((2, 2, 1), jax.random.PRNGKey(0), latent_dim=3)
  zero = jax.tree.map(jnp.zeros_like, state.params)
  images = jnp.array([[[[0.0], [1.0]], [[0.25], [1.0]]]])
  sums = vae_eval_step(state.replace(params=zero), {"image": images},
                       jax.random.PRNGKey(1))
  # q(z|x) = N(0, 1) = p(z): KL 0. Logits 0: BCE(0, x) = log 2 for every x.
  assert float(sums["kl"]) == pytest.approx(0.0, abs=1e-6)
  assert float(sums["reconstruction"]) == pytest.approx(-4 * np.log(2), rel=1e-5)
  assert float(sums["count"]) == 1.0


def test_gaussian_likelihood_and_kl_at_known_encoder_outputs():
  model = VAE((1, 1, 1), latent_dim=2, likelihood="gaussian")
  x = jnp.full((1, 1, 1, 1), 0.5)
  params = model.init(jax.random.PRNGKey(0), x, jax.random.PRNGKey(1))["params"]
  assert float(jnp.exp(params["log_scale"])) == pytest.approx(0.1)
  params = jax.tree.map(jnp.zeros_like, params)
  # Encoder mean bias 1, log-variance bias log 2: KL = 1/2 * 2 * (2 + 1 - 1 - log 2).
  params["encoder"]["mean"]["bias"] = jnp.ones(2)
  params["encoder"]["log_var"]["bias"] = jnp.full(2, np.log(2.0))
  log_p, kl = model.apply({"params": params}, x, jax.random.PRNGKey(2))
  assert float(kl[0]) == pytest.approx(2 - np.log(2), rel=1e-5)
  # Decoder output sigmoid(0) = 0.5 = x, log_scale 0: log N(0; 0, 1).
  assert float(log_p[0]) == pytest.approx(-0.5 * np.log(2 * np.pi), rel=1e-5)


def test_unknown_likelihood_is_refused():
  with pytest.raises(ConfigError, match="unknown likelihood 'poisson'"):
    create_vae_state((8, 8, 1), jax.random.PRNGKey(0), likelihood="poisson")


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_elbo_improves_on_digits(likelihood):
  data = load_dataset("digits")
  state = create_vae_state((8, 8, 1), jax.random.PRNGKey(0),
                           likelihood=likelihood)
  test = {"image": jnp.asarray(data.test.images)}
  evaluate = jax.jit(lambda s: vae_eval_step(s, test, jax.random.PRNGKey(9)))
  before = float(evaluate(state)["elbo"]) / len(data.test)
  images = jnp.asarray(data.train.images)

  def body(state, key):
    batch_key, step_key = jax.random.split(key)
    rows = jax.random.randint(batch_key, (64,), 0, len(images))
    return vae_step(state, {"image": images[rows]}, step_key)

  state, metrics = jax.jit(lambda s, k: lax.scan(
      body, s, jax.random.split(k, 600)))(state, jax.random.PRNGKey(1))
  after = float(evaluate(state)["elbo"]) / len(data.test)
  assert np.all(np.isfinite(metrics["loss"]))
  np.testing.assert_allclose(metrics["elbo"],
                             metrics["reconstruction"] - metrics["kl"], rtol=1e-4)
  assert after > before + 10.0  # Nats per image.
  assert float(jnp.mean(metrics["kl"][-50:])) > 1.0  # The latents are used.
