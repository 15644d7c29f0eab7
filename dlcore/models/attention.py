"""Multi-head dot-product attention: one function for every mask, and the layer around it.

Shapes: queries ``[B, T, H, D]``, keys and values ``[B, S, H, D]``, masks
boolean and broadcastable to ``[B, H, T, S]`` (True: may attend).

``attention(q, k, v, mask)`` is ``softmax(q k^T / sqrt(D) + m) v`` with
``m = 0`` where ``mask`` holds and a large negative number elsewhere, on
``jax.nn.dot_product_attention``; ``attention_weights`` gives the softmax
itself (``[B, H, T, S]``, float32) for attention maps. The masks compose
with ``&``: ``causal_mask(T)`` (a query sees itself and what precedes it),
``segment_mask(q_ids, kv_ids)`` (packed sequences: a token sees only its
own document; id 0 is padding and sees nothing), ``padding_mask(valid)``.

``rotary(x, positions)`` rotates each head's feature pairs ``(x_i,
x_{i + D/2})`` by the angle ``position / 10000^(2i/D)`` (RoFormer, Su et
al. 2021, in the half-split layout of GPT-NeoX and Gemma), so that ``q . k``
depends on positions only through their difference.

``MultiHeadAttention`` projects inputs to heads, attends and projects
back. Its kernels carry logical axis names (``embed``, ``heads``, ``kv``)
through ``nn.with_logical_partitioning``, so sharding rules can split them
over devices. With ``decode=True`` it keeps a key/value cache
(collection ``"cache"``, ``[B, L, H, D]``, made by ``init`` on an input
of the full length ``L``): every call writes its tokens' keys and values at
their ``positions`` and lets each query attend to the slots at or before
its own position. A prompt of any length is written in one call
(prefill), then one token per call; examples of a batch may sit at
different positions.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

# Logical axis names of the attention kernels.
EMBED, HEADS, KV = "embed", "heads", "kv"


def causal_mask(length: int) -> jax.Array:
  """``[1, 1, T, T]``: query ``t`` may attend to keys ``0 .. t``."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


def segment_mask(query_segments: jax.Array,
                 key_segments: jax.Array) -> jax.Array:
  """``[B, 1, T, S]``: same segment id, and neither is padding (id 0)."""
  same = query_segments[:, :, None] == key_segments[:, None, :]
  real = (query_segments[:, :, None] > 0) & (key_segments[:, None, :] > 0)
  return (same & real)[:, None]


def padding_mask(key_valid: jax.Array) -> jax.Array:
  """``[B, 1, 1, S]`` from ``key_valid`` ``[B, S]``: attend to real keys only."""
  return key_valid.astype(bool)[:, None, None, :]


def attention(query: jax.Array, key: jax.Array, value: jax.Array,
              mask: jax.Array | None = None) -> jax.Array:
  """``softmax(q k^T / sqrt(D), masked) v``: ``[B, T, H, D]``.

  A query whose every key is masked gets the mean of the values (its
  weights are uniform), never NaN.
  """
  return jax.nn.dot_product_attention(query, key, value, mask=mask)


def attention_weights(query: jax.Array, key: jax.Array,
                      mask: jax.Array | None = None) -> jax.Array:
  """The softmax weights of ``attention``: ``[B, H, T, S]`` in float32."""
  scale = query.shape[-1] ** -0.5
  logits = jnp.einsum("bthd,bshd->bhts", query, key,
                      preferred_element_type=jnp.float32) * scale
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(logits, axis=-1)


def rotary(x: jax.Array, positions: jax.Array,
           max_wavelength: float = 10_000.0) -> jax.Array:
  """``x`` ``[B, T, H, D]`` (``D`` even) rotated by ``positions`` ``[B, T]``; see the module docstring."""
  half = x.shape[-1] // 2
  frequencies = max_wavelength ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions[..., None].astype(jnp.float32) * frequencies  # [B, T, D/2]
  sin, cos = jnp.sin(angles)[:, :, None], jnp.cos(angles)[:, :, None]
  first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([first * cos - second * sin,
                             second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)


class MultiHeadAttention(nn.Module):
  """``num_heads`` heads of width ``head_dim``; see the module docstring.

  Attributes:
    num_heads: heads ``H``.
    head_dim: features per head ``D``.
    use_rotary: rotate queries and keys by their positions (self-attention).
    use_bias: biases on the projections.
    decode: keep a key/value cache (self-attention only).
    dtype: computation dtype (the softmax runs in float32).
    param_dtype: parameter dtype.
  """
  num_heads: int
  head_dim: int
  use_rotary: bool = False
  use_bias: bool = True
  decode: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array | None = None,
               *, mask: jax.Array | None = None,
               positions: jax.Array | None = None,
               sow_weights: bool = False) -> jax.Array:
    """``[B, T, E] -> [B, T, E]``.

    Args:
      inputs_q: the queries' inputs.
      inputs_kv: the keys' and values' inputs ``[B, S, E']`` (default:
        ``inputs_q``, self-attention).
      mask: broadcastable to ``[B, H, T, S]``; in decode mode it is
        combined with the cache's own mask (slots at or before the query).
      positions: ``[B, T]`` int positions of the queries' tokens (default
        ``0 .. T-1``): the rotary angles and, in decode mode, the cache
        slots written.
      sow_weights: also store the weights ``[B, H, T, S]`` in the
        ``intermediates`` collection as ``attention_weights``.
    """
    inputs_kv = inputs_q if inputs_kv is None else inputs_kv
    batch, length = inputs_q.shape[:2]
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(length), (batch, length))
    dense = functools.partial(
        nn.DenseGeneral, axis=-1, features=(self.num_heads, self.head_dim),
        use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), (EMBED, HEADS, KV)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                               (HEADS, KV)))
    query = dense(name="query")(inputs_q)
    key = dense(name="key")(inputs_kv)
    value = dense(name="value")(inputs_kv)
    if self.use_rotary:
      query = rotary(query, positions)
      key = rotary(key, positions)
    if self.decode:
      key, value, mask = self._cached(key, value, positions, mask)
    if sow_weights:
      weights = attention_weights(query, key, mask)
      self.sow("intermediates", "attention_weights", weights)
      out = jnp.einsum("bhts,bshd->bthd", weights.astype(self.dtype), value)
    else:
      out = attention(query, key, value, mask)
    return nn.DenseGeneral(
        features=inputs_q.shape[-1], axis=(-2, -1), use_bias=self.use_bias,
        dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), (HEADS, KV, EMBED)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                               (EMBED,)),
        name="out")(out)

  def _cached(self, key, value, positions, mask):
    """Writes ``key``/``value`` at ``positions``; returns the whole cache and its mask.

    At initialisation the cache is made as long as the input and left
    empty (zeros).
    """
    initializing = not self.has_variable("cache", "cached_key")
    cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape,
                               key.dtype)
    cached_value = self.variable("cache", "cached_value", jnp.zeros,
                                 value.shape, value.dtype)
    if initializing:
      return key, value, mask
    rows = jnp.arange(key.shape[0])[:, None]
    cached_key.value = cached_key.value.at[rows, positions].set(
        key, mode="drop")
    cached_value.value = cached_value.value.at[rows, positions].set(
        value, mode="drop")
    slots = jnp.arange(cached_key.value.shape[1])
    seen = (slots[None, None, :] <= positions[:, :, None])[:, None]
    return (cached_key.value, cached_value.value,
            seen if mask is None else seen & mask)
