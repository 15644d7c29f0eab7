"""Mixed precision: every model computes in bfloat16 with float32 parameters and outputs.

For each model built with ``dtype=bfloat16``: its parameters are float32,
its output is float32 and close to the float32 model's on the same
parameters, and every matmul and convolution in ``apply``'s jaxpr reads
bfloat16 operands.

Tolerance: bfloat16 keeps 8 significant bits, so each rounding (of an
input, a weight, a layer's output) is off by at most ``2^-9`` relative, and
a value passes through a few roundings per layer: over a handful of layers,
some 10-30 roundings, partly cancelling, make an error of a few times
``2^-9``. Gradients also pass through the backward pass, and some are sums
whose terms partly cancel (LeNet-5's C1 bias sums 576 positions), which
magnifies the terms' relative error. Measured here: outputs within 0.8% of
their largest magnitude, gradients within 2.3% (that bias); both must agree
to ``TOLERANCE = 2^-4`` of the float32 ones' largest magnitude. A layer
left in float32 is caught by the jaxpr check, a wrong output or parameter
dtype by the dtype checks, and a custom VJP whose cotangents do not match
its bfloat16 inputs fails outright.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend.core import ClosedJaxpr, Jaxpr

from dlcore.models import CLASSIFIERS, create_classifier
from dlcore.models.gan import ARCHITECTURES, create_gan_models
from dlcore.models.qnetworks import create_q_network
from dlcore.models.vae import VAE

TOLERANCE = 2.0 ** -4
HEAVY_OPS = ("dot_general", "conv_general_dilated")

IMAGES = jax.random.normal(jax.random.PRNGKey(0), (4, 12, 12, 1))
SMALL_IMAGES = jax.nn.sigmoid(IMAGES[:, :8, :8])  # In [0, 1], for the VAE.
LABELS = jnp.array([0, 3, 7, 9])


def _sub_jaxprs(value):
  """The jaxprs inside one equation parameter (scan bodies, calls, branches)."""
  if isinstance(value, ClosedJaxpr):
    return [value.jaxpr]
  if isinstance(value, Jaxpr):
    return [value]
  if isinstance(value, (tuple, list)):
    return [j for v in value for j in _sub_jaxprs(v)]
  return []


def heavy_operand_dtypes(jaxpr: Jaxpr) -> list[str]:
  """Dtypes of every operand of every matmul and convolution, nested ones too."""
  dtypes = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in HEAVY_OPS:
      dtypes += [str(v.aval.dtype) for v in eqn.invars]
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        dtypes += heavy_operand_dtypes(sub)
  return dtypes


def assert_runs_in_bfloat16(fn, *args):
  dtypes = heavy_operand_dtypes(jax.make_jaxpr(fn)(*args).jaxpr)
  assert dtypes and set(dtypes) == {"bfloat16"}, dtypes


def assert_close(got, want):
  """``|got - want| < TOLERANCE * max |want|`` elementwise."""
  got, want = np.asarray(got), np.asarray(want)
  np.testing.assert_array_less(np.abs(got - want),
                               TOLERANCE * np.max(np.abs(want)))


def random_variables(model, *args, method=None):
  """Variables for ``model.apply(variables, *args)``, drawn on the host.

  Shapes and dtypes come from ``init`` traced abstractly, and the test
  asserts they are float32. Kernels and embeddings are ``N(0, 1/fan_in)``;
  other parameters and statistics ``0.1 N(0, 1)``, around 1 for scales and
  variances. Drawing them with numpy compiles nothing.
  """
  shapes = nn.meta.unbox(jax.eval_shape(
      functools.partial(model.init, method=method), jax.random.key(0), *args))
  assert {leaf.dtype for leaf in jax.tree.leaves(shapes)} == {
      np.dtype(np.float32)}
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    if leaf.ndim >= 2:
      value = rng.standard_normal(leaf.shape) / np.sqrt(
          np.prod(leaf.shape[:-1]))
    else:
      value = 0.1 * rng.standard_normal(leaf.shape)
      if path[-1].key in ("scale", "var"):
        value = value + 1.0
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def check_mixed_precision(make, args, method=None):
  """``make(dtype)`` builds the model; ``args`` are what ``apply`` reads.

  The bfloat16 and float32 models run on the same float32 variables.
  """
  bf16, f32 = make(jnp.bfloat16), make(jnp.float32)
  variables = random_variables(bf16, *args, method=method)
  apply = lambda model: functools.partial(model.apply, method=method)
  got, want = jax.jit(lambda v: (apply(bf16)(v, *args),
                                 apply(f32)(v, *args)))(variables)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert g.dtype == jnp.float32
    assert_close(g, w)
  assert_runs_in_bfloat16(apply(bf16), variables, *args)


# The ImageNet ResNets are built of the CIFAR ResNets' layers (and a
# max-pool); compiling ResNet-50 twice would add half a minute.
@pytest.mark.parametrize("name", sorted(n for n in CLASSIFIERS
                                        if not n.endswith("_imagenet")))
def test_classifiers_compute_in_bfloat16(name):
  check_mixed_precision(lambda dtype: create_classifier(name, 10, dtype),
                        (IMAGES,))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_conditional_gan_models_compute_in_bfloat16(arch):
  """Class-conditional: the label embeddings and projection head too."""
  models = lambda dtype: create_gan_models(arch, (8, 8, 1), 10, dtype)
  noise = jax.random.normal(jax.random.PRNGKey(2), (4, 16))
  check_mixed_precision(lambda dtype: models(dtype)[0], (noise, LABELS))
  check_mixed_precision(lambda dtype: models(dtype)[1],
                        (2 * SMALL_IMAGES - 1, LABELS))


def test_batchnorm_statistics_stay_float32_in_bfloat16_training():
  make = lambda dtype: create_gan_models("dcgan", (8, 8, 1), 0, dtype)[0]
  noise = jax.random.normal(jax.random.PRNGKey(2), (4, 16))
  variables = random_variables(make(jnp.bfloat16), noise)
  train = lambda model: model.apply(variables, noise, train=True,
                                    mutable=["batch_stats"])[1]
  got, want = jax.jit(lambda: (train(make(jnp.bfloat16)),
                               train(make(jnp.float32))))()
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert g.dtype == jnp.float32
    assert_close(g, w)


def test_vae_computes_in_bfloat16():
  """The Gaussian likelihood's learned scale is a parameter too."""
  make = lambda dtype: VAE((8, 8, 1), latent_dim=4, likelihood="gaussian",
                           dtype=dtype)
  # The ELBO terms (log p(x | z), KL) and the decoded means.
  check_mixed_precision(make, (SMALL_IMAGES, jax.random.PRNGKey(3)))
  check_mixed_precision(make, (SMALL_IMAGES,), method=VAE.reconstruct)


@pytest.mark.parametrize("obs_shape,dueling", [((4,), False),
                                               ((10, 10, 3), True)])
def test_q_networks_compute_in_bfloat16(obs_shape, dueling):
  """The MLP with the plain head, the MinAtar CNN with the dueling head."""
  obs = jax.random.normal(jax.random.PRNGKey(4), (4, *obs_shape))
  check_mixed_precision(
      lambda dtype: create_q_network(obs_shape, 3, dueling=dueling,
                                     dtype=dtype), (obs,))


@pytest.mark.parametrize("name", ["lenet5", "lstm"])
def test_bfloat16_gradients_through_custom_vjps(name):
  """LeNet-5's PatchConv and the LSTM have hand-written VJPs."""
  bf16, f32 = (create_classifier(name, 10, dtype)
               for dtype in (jnp.bfloat16, jnp.float32))
  variables = random_variables(bf16, IMAGES)

  def grad(model):
    loss = lambda v: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        model.apply(v, IMAGES), LABELS))
    return jax.grad(loss)

  got, want = jax.jit(lambda v: (grad(bf16)(v), grad(f32)(v)))(variables)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert g.dtype == jnp.float32
    assert_close(g, w)
  # The backward passes' matmuls run in bfloat16 too.
  assert_runs_in_bfloat16(grad(bf16), variables)
