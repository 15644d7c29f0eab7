"""A Transformer encoder classifier with multi-head self-attention.

Tokens are sequence steps ``[B, T, F]``, or image rows ``[B, H, W*C]``.
Each token is embedded to ``model_dim`` and given a learned position
embedding; ``num_layers`` pre-LayerNorm blocks apply
``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``; the mean over tokens feeds a
linear read-out. Output ``[B, num_classes]``. Dropout draws from the
``dropout`` RNG stream when ``train`` is true. Every layer computes in
``dtype`` with ``param_dtype`` parameters (LayerNorm's statistics in
float32); the logits are float32. Every kernel carries logical axis names
(``embed``, ``mlp``, ``heads``, ``kv``), so the
sharding rules can split the model over devices (``dlcore.sharding``).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.models.attention import EMBED, MultiHeadAttention
from dlcore.models.recurrent import as_sequence

MLP = "mlp"


def dense(features: int, axes: tuple[str | None, str | None], **kwargs):
  """``nn.Dense`` whose kernel is annotated with the logical ``axes``."""
  return nn.Dense(features, kernel_init=nn.with_logical_partitioning(
      nn.initializers.lecun_normal(), axes),
                  bias_init=nn.with_logical_partitioning(
                      nn.initializers.zeros, axes[1:]), **kwargs)


class EncoderBlock(nn.Module):
  """One pre-LayerNorm Transformer encoder block."""
  num_heads: int
  mlp_dim: int
  dropout_rate: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.LayerNorm, **dtypes)
    dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
    y = MultiHeadAttention(num_heads=self.num_heads,
                           head_dim=x.shape[-1] // self.num_heads,
                           **dtypes)(norm()(x))
    x = x + dropout(y)
    y = dense(self.mlp_dim, (EMBED, MLP), **dtypes)(norm()(x))
    y = dense(x.shape[-1], (MLP, EMBED), **dtypes)(nn.gelu(y))
    return x + dropout(y)


class TransformerClassifier(nn.Module):
  """Transformer encoder over tokens, mean-pooled, then a linear read-out."""
  num_classes: int = 10
  model_dim: int = 64
  num_heads: int = 4
  num_layers: int = 2
  mlp_dim: int = 128
  dropout_rate: float = 0.1
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "Dense_1"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = dense(self.model_dim, (None, EMBED), **dtypes)(as_sequence(x))
    positions = self.param("position_embedding",
                           nn.initializers.normal(stddev=0.02),
                           (1,) + x.shape[1:], self.param_dtype)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(
        x + positions.astype(self.dtype))
    for _ in range(self.num_layers):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout_rate,
                       **dtypes)(x, train)
    x = nn.LayerNorm(**dtypes)(x)
    return dense(self.num_classes, (EMBED, None), **dtypes)(
        jnp.mean(x, axis=1)).astype(jnp.float32)
