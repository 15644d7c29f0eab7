"""Convolution as image patches times one matmul, on channel-major activations.

Usage::

  x = jnp.moveaxis(images, -1, 0)                   # [B, H, W, C] -> [C, B, H, W]
  y = PatchConv(16, (5, 5), padding="VALID")(x)     # [16, B, H-4, W-4]
  y = avg_pool_2x2(jnp.tanh(y))                     # [16, B, (H-4)//2, (W-4)//2]

For the few channels of small convnets (LeNet-5 reads 1 then 6) XLA's CPU
convolutions vectorise badly: measured on a 2-core AMD EPYC, one core,
LeNet-5's C3 input gradient alone took 5.3 ms of a 25 ms train step that
PyTorch eager does in 17 ms. Here each convolution is three dense matmuls
over a patch matrix whose rows are the ``C*kh*kw`` shifted copies of the
input, laid out ``[C, B, H, W]`` so that building the patches and undoing
them are contiguous copies:

  forward          ``Y = W P``           ``[O, K] x [K, N]``
  weight gradient  ``dW = dY P^T``       ``[O, N] x [N, K]``
  input gradient   ``dX = col2im(W^T dY)``  ``[K, O] x [O, N]``

with ``K = C*kh*kw`` and ``N = B*H'*W'``. The VJP is written out because
JAX's transpose of the 25 patch slices is a sum of 25 padded copies, which
XLA fuses into the next operation and recomputes for every pixel that reads
it (the whole LeNet-5 step took 37 ms that way, 14 ms with ``col2im``, which
adds each slice in place). Against ``nn.Conv``, the LeNet-5 train step became
1.6x faster on one core (26.7-28.2 -> 16.6-18.1 ms, batch 128; PyTorch
eager: 16.6).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

Padding = str  # "SAME" or "VALID", stride 1, as nn.Conv.


def patches(x: jax.Array, kernel_size: tuple[int, int]) -> jax.Array:
  """``[C, B, H, W]`` -> ``[C*kh*kw, B*H'*W']``, rows ordered ``(c, i, j)``.

  Row ``(c, i, j)`` holds ``x[c, :, i:i+H', j:j+W']`` flattened, with
  ``H' = H - kh + 1`` and ``W' = W - kw + 1`` (a VALID window).
  """
  channels, batch, height, width = x.shape
  kh, kw = kernel_size
  out_h, out_w = height - kh + 1, width - kw + 1
  shifted = [x[:, :, i:i + out_h, j:j + out_w]
             for i in range(kh) for j in range(kw)]
  return jnp.stack(shifted, axis=1).reshape(channels * kh * kw,
                                            batch * out_h * out_w)


def col2im(d_patches: jax.Array, shape: tuple[int, int, int, int],
           kernel_size: tuple[int, int]) -> jax.Array:
  """The adjoint of ``patches``: ``[C*kh*kw, B*H'*W']`` -> ``[C, B, H, W]``.

  Each of the ``kh*kw`` row blocks is added into its window of a zero
  image, in place (XLA's dynamic-update-slice), not as a padded copy.
  """
  channels, batch, height, width = shape
  kh, kw = kernel_size
  out_h, out_w = height - kh + 1, width - kw + 1
  blocks = d_patches.reshape(channels, kh, kw, batch, out_h, out_w)
  x = jnp.zeros(shape, d_patches.dtype)
  for i in range(kh):
    for j in range(kw):
      x = x.at[:, :, i:i + out_h, j:j + out_w].add(blocks[:, i, j])
  return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid(x: jax.Array, matrix: jax.Array,
               kernel_size: tuple[int, int]) -> jax.Array:
  """VALID stride-1 cross-correlation: ``[C, B, H, W]`` -> ``[O, B, H', W']``.

  ``matrix`` is the kernel as ``[O, C*kh*kw]``, columns ordered ``(c, i, j)``.
  """
  return _conv_valid_fwd(x, matrix, kernel_size)[0]


def _conv_valid_fwd(x, matrix, kernel_size):
  _, batch, height, width = x.shape
  kh, kw = kernel_size
  x_patches = patches(x, kernel_size)
  y = (matrix @ x_patches).reshape(matrix.shape[0], batch, height - kh + 1,
                                   width - kw + 1)
  return y, (x_patches, matrix)


def _conv_valid_bwd(kernel_size, residuals, dy):
  x_patches, matrix = residuals
  kh, kw = kernel_size
  out_channels, batch, out_h, out_w = dy.shape
  dy = dy.reshape(out_channels, -1)
  d_matrix = dy @ x_patches.T
  shape = (matrix.shape[1] // (kh * kw), batch, out_h + kh - 1, out_w + kw - 1)
  dx = col2im(matrix.T @ dy, shape, kernel_size)
  return dx, d_matrix


conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


def pad_same(x: jax.Array, kernel_size: tuple[int, int]) -> jax.Array:
  """Zero-pads ``[C, B, H, W]`` so a VALID window keeps ``H, W`` (as lax SAME)."""
  pads = [(0, 0), (0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2)
                             for k in kernel_size]
  return jnp.pad(x, pads)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 average pooling, stride 2, on ``[C, B, H, W]`` (odd edges dropped).

  Four strided slices summed: one elementwise pass that XLA fuses with its
  neighbours (``nn.avg_pool``'s reduce-window was 2x slower here).
  """
  height, width = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
  return 0.25 * (x[:, :, 0:height:2, 0:width:2] + x[:, :, 1:height:2, 0:width:2]
                 + x[:, :, 0:height:2, 1:width:2]
                 + x[:, :, 1:height:2, 1:width:2])


class PatchConv(nn.Module):
  """``nn.Conv`` (stride 1) on channel-major ``[C, B, H, W]`` activations.

  Same parameters, initialisers and results as ``nn.Conv(features,
  kernel_size, padding=padding, dtype=dtype, param_dtype=param_dtype)`` on
  the NHWC transpose: ``kernel`` ``[kh, kw, C, O]`` and ``bias`` ``[O]``
  in ``param_dtype``; input, kernel and bias are cast to ``dtype``, in which
  the convolution and its VJP run. Output ``[O, B, H', W']`` in ``dtype``.
  """
  features: int
  kernel_size: tuple[int, int]
  padding: Padding = "SAME"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.padding not in ("SAME", "VALID"):
      raise ValueError(f"PatchConv padding must be 'SAME' or 'VALID', got "
                       f"{self.padding!r}")
    kernel_size = tuple(self.kernel_size)
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*kernel_size, x.shape[0], self.features),
                        self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if self.padding == "SAME":
      x = pad_same(x, kernel_size)
    matrix = jnp.transpose(kernel, (3, 2, 0, 1)).reshape(self.features, -1)
    return conv_valid(x, matrix, kernel_size) + bias[:, None, None, None]
