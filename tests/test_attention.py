"""dlcore.models.attention: against a hand-written softmax attention, and the cache against full sequences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.models import attention as attn


def reference_attention(q, k, v, mask):
  """Softmax attention written out with NumPy, one query at a time."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  mask = np.broadcast_to(np.asarray(mask), (q.shape[0], q.shape[2],
                                            q.shape[1], k.shape[1]))
  out = np.zeros_like(q)
  for b in range(q.shape[0]):
    for h in range(q.shape[2]):
      for t in range(q.shape[1]):
        logits = k[b, :, h] @ q[b, t, h] / np.sqrt(q.shape[-1])
        allowed = mask[b, h, t]
        if not allowed.any():
          continue
        weights = np.where(allowed, np.exp(logits - logits[allowed].max()), 0)
        out[b, t, h] = weights @ v[b, :, h] / weights.sum()
  return out


def random_qkv(key, batch=2, length=6, heads=3, dim=8):
  return jax.random.normal(key, (3, batch, length, heads, dim))


def test_causal_and_segment_masks_match_the_written_out_softmax():
  q, k, v = random_qkv(jax.random.PRNGKey(0))
  segments = jnp.array([[1, 1, 1, 2, 2, 0], [1, 2, 2, 2, 3, 3]])
  mask = attn.causal_mask(6) & attn.segment_mask(segments, segments)
  out = attn.attention(q, k, v, mask)
  real = np.asarray(segments) > 0  # Padding queries attend to nothing.
  np.testing.assert_allclose(np.asarray(out)[real],
                             reference_attention(q, k, v, mask)[real],
                             rtol=1e-5, atol=1e-6)
  weights = attn.attention_weights(q, k, mask)
  np.testing.assert_allclose(
      jnp.einsum("bhts,bshd->bthd", weights, v), out, rtol=1e-5, atol=1e-6)


def test_masks_by_hand():
  segments = jnp.array([[1, 1, 2, 0]])
  expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                       [0, 0, 0, 0]], bool)
  np.testing.assert_array_equal(attn.segment_mask(segments, segments)[0, 0],
                                expected)
  np.testing.assert_array_equal(attn.causal_mask(3)[0, 0],
                                [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
  np.testing.assert_array_equal(
      attn.padding_mask(jnp.array([[1, 0, 1]]))[0, 0, 0], [True, False, True])


def test_rotary_scores_depend_on_the_position_difference_only():
  q, k, _ = random_qkv(jax.random.PRNGKey(1), batch=1, length=5)
  positions = jnp.arange(5)[None]
  scores = lambda shift: jnp.einsum(
      "bthd,bshd->bhts", attn.rotary(q, positions + shift),
      attn.rotary(k, positions + shift))
  np.testing.assert_allclose(scores(0), scores(37), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(jnp.linalg.norm(attn.rotary(q, positions), axis=-1),
                             jnp.linalg.norm(q, axis=-1), rtol=1e-5)
  # Position 0 is the identity; position 1 rotates the first pair by 1 rad.
  np.testing.assert_allclose(attn.rotary(q, 0 * positions), q, atol=1e-6)
  x = jnp.zeros((1, 1, 1, 4)).at[0, 0, 0, 0].set(1.0)
  np.testing.assert_allclose(attn.rotary(x, jnp.ones((1, 1), int))[0, 0, 0],
                             [np.cos(1.0), 0.0, np.sin(1.0), 0.0], atol=1e-6)


def _layer(decode):
  return attn.MultiHeadAttention(num_heads=2, head_dim=4, use_rotary=True,
                                 decode=decode)


@pytest.mark.parametrize("prompt", [1, 3, 8])
def test_cached_decoding_equals_the_full_sequence(prompt):
  length, batch = 8, 2
  x = jax.random.normal(jax.random.PRNGKey(2), (batch, length, 16))
  params = _layer(False).init(jax.random.PRNGKey(3), x)["params"]
  full = _layer(False).apply({"params": params}, x, mask=attn.causal_mask(length))
  cache = _layer(True).init(jax.random.PRNGKey(3), x)["cache"]
  positions = jnp.broadcast_to(jnp.arange(length), (batch, length))
  outputs = []
  for start, stop in [(0, prompt)] + [(t, t + 1) for t in range(prompt, length)]:
    out, variables = _layer(True).apply(
        {"params": params, "cache": cache}, x[:, start:stop],
        positions=positions[:, start:stop], mutable=["cache"])
    cache = variables["cache"]
    outputs.append(out)
  np.testing.assert_allclose(jnp.concatenate(outputs, 1), full, rtol=1e-5,
                             atol=1e-5)


def test_examples_of_a_batch_can_sit_at_different_positions():
  """Two prompts of lengths 2 and 4 prefilled together, then one step each."""
  x = jax.random.normal(jax.random.PRNGKey(4), (2, 6, 16))
  params = _layer(False).init(jax.random.PRNGKey(5), x)["params"]
  full = _layer(False).apply({"params": params}, x, mask=attn.causal_mask(6))
  cache = _layer(True).init(jax.random.PRNGKey(5), x)["cache"]
  _, variables = _layer(True).apply(
      {"params": params, "cache": cache}, x[:, :4],
      positions=jnp.broadcast_to(jnp.arange(4), (2, 4)), mutable=["cache"])
  lengths = jnp.array([2, 4])  # Example 0's slots 2, 3 hold padding.
  step = x[jnp.arange(2), lengths][:, None]
  out, _ = _layer(True).apply({"params": params, **variables}, step,
                              positions=lengths[:, None], mutable=["cache"])
  np.testing.assert_allclose(out[0, 0], full[0, 2], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[1, 0], full[1, 4], rtol=1e-5, atol=1e-5)


def test_sown_weights_give_the_same_output_and_sum_to_one():
  x = jax.random.normal(jax.random.PRNGKey(6), (2, 5, 16))
  layer = _layer(False)
  params = layer.init(jax.random.PRNGKey(7), x)["params"]
  mask = attn.causal_mask(5)
  plain = layer.apply({"params": params}, x, mask=mask)
  out, state = layer.apply({"params": params}, x, mask=mask, sow_weights=True,
                           mutable=["intermediates"])
  (weights,) = state["intermediates"]["attention_weights"]
  np.testing.assert_allclose(out, plain, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
  assert float(jnp.abs(jnp.triu(weights[0, 0], 1)).max()) == 0.0


def test_kernels_carry_logical_axis_names():
  x = jnp.zeros((1, 3, 16))
  boxed = _layer(False).init(jax.random.PRNGKey(0), x)["params"]
  assert boxed["query"]["kernel"].names == ("embed", "heads", "kv")
  assert boxed["out"]["kernel"].names == ("heads", "kv", "embed")
