"""Model output shapes and parameter counts against hand computations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.models import (CLASSIFIERS, CNN, MLP, LeNet5, RecurrentClassifier,
                           ResNet, ResNet18, ResNet20, TransformerClassifier,
                           create_classifier)
from dlcore.models import patch_conv
from dlcore.models.gan import DCGANGenerator, MLPGenerator
from dlcore.models.lstm import LSTM
from dlcore.models.patch_conv import PatchConv
from dlcore.state import count_params


def init(model, x):
  return jax.jit(model.init)({"params": jax.random.PRNGKey(0),
                              "dropout": jax.random.PRNGKey(1)}, x)


def abstract_init(model, x):
  """Variables' shapes only: no arithmetic is done."""
  return jax.eval_shape(lambda: init(model, x))


def dense(n_in, n_out):
  return n_in * n_out + n_out


def conv(k, c_in, c_out, bias=True):
  return k * k * c_in * c_out + (c_out if bias else 0)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_every_classifier_maps_images_to_logits(name):
  model = create_classifier(name, num_classes=7)
  x = jnp.ones((3, 28, 28, 1))
  logits = jax.eval_shape(lambda: model.apply(init(model, x), x))
  assert logits.shape == (3, 7)


def test_mlp_parameter_count():
  params = abstract_init(MLP(hidden_sizes=(32, 16), num_outputs=10),
                         jnp.ones((1, 8, 8, 1)))
  assert count_params(params) == dense(64, 32) + dense(32, 16) + dense(16, 10)


def test_lenet5_matches_the_paper_on_28x28():
  params = abstract_init(LeNet5(), jnp.ones((1, 28, 28, 1)))
  # C1 6@5x5, C3 16@5x5 on a 5x5x16 S4 map, F5 120, F6 84, output 10.
  expected = (conv(5, 1, 6) + conv(5, 6, 16) + dense(5 * 5 * 16, 120)
              + dense(120, 84) + dense(84, 10))
  assert count_params(params) == expected == 61_706


@pytest.mark.parametrize("channels,padding", [(1, "SAME"), (3, "VALID")])
def test_patch_conv_is_nn_conv_on_channel_major_input(channels, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 7, channels))
  reference = nn.Conv(4, (5, 3), padding=padding)
  variables = init(reference, x)
  variables = jax.tree.map(lambda p: p + 0.1, variables)  # non-zero bias
  patch_conv = PatchConv(4, (5, 3), padding)
  to_cm = lambda images: jnp.moveaxis(images, -1, 0)
  assert jax.tree.map(jnp.shape, init(patch_conv, to_cm(x))) == jax.tree.map(
      jnp.shape, variables)
  got = lambda v, images: jnp.moveaxis(patch_conv.apply(v, to_cm(images)),
                                       0, -1)
  want = reference.apply
  assert jnp.allclose(got(variables, x), want(variables, x), atol=1e-5)
  # Gradients with respect to the parameters and to the input (the VJP is
  # written by hand).
  loss = lambda apply: lambda v, images: jnp.sum(jnp.sin(apply(v, images)))
  for g, w in zip(jax.tree.leaves(jax.grad(loss(got), (0, 1))(variables, x)),
                  jax.tree.leaves(jax.grad(loss(want), (0, 1))(variables, x))):
    assert jnp.allclose(g, w, rtol=1e-4, atol=1e-5)


def test_col2im_is_the_adjoint_of_patches():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 7, 6))
  d = jax.random.normal(jax.random.PRNGKey(1), (3 * 4 * 2, 2 * 4 * 5))
  # <patches(x), d> == <x, col2im(d)> for every x, d.
  assert jnp.allclose(jnp.vdot(patch_conv.patches(x, (4, 2)), d),
                      jnp.vdot(x, patch_conv.col2im(d, x.shape, (4, 2))),
                      rtol=1e-5)


def test_avg_pool_2x2_is_nn_avg_pool():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 7, 6))  # odd height
  want = nn.avg_pool(jnp.moveaxis(x, 0, -1), (2, 2), strides=(2, 2))
  assert jnp.allclose(jnp.moveaxis(patch_conv.avg_pool_2x2(x), 0, -1), want,
                      atol=1e-6)


class NHWCLeNet5(nn.Module):
  """LeNet-5 as it reads with ``nn.Conv``: the reference for ``LeNet5``."""

  @nn.compact
  def __call__(self, x):
    pool = lambda y: nn.avg_pool(y, (2, 2), strides=(2, 2))
    x = pool(jnp.tanh(nn.Conv(6, (5, 5), padding="SAME", name="Conv_0")(x)))
    x = pool(jnp.tanh(nn.Conv(16, (5, 5), padding="VALID", name="Conv_1")(x)))
    x = jnp.tanh(nn.Dense(120)(x.reshape((x.shape[0], -1))))
    x = jnp.tanh(nn.Dense(84)(x))
    return nn.Dense(10)(x)


@pytest.mark.parametrize("shape", [(3, 28, 28, 1), (2, 13, 15, 3)])
def test_lenet5_is_the_nn_conv_lenet5(shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  variables = init(LeNet5(), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(
      jnp.shape, init(NHWCLeNet5(), x))
  assert jnp.allclose(jax.jit(LeNet5().apply)(variables, x),
                      jax.jit(NHWCLeNet5().apply)(variables, x), atol=1e-5)
  grad = lambda model: jax.jit(jax.grad(
      lambda v: jnp.sum(jnp.sin(model.apply(v, x)))))(variables)
  for got, want in zip(jax.tree.leaves(grad(LeNet5())),
                       jax.tree.leaves(grad(NHWCLeNet5()))):
    assert jnp.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_lenet5_rejects_images_too_small():
  with pytest.raises(ValueError, match="at least 12x12"):
    abstract_init(LeNet5(), jnp.ones((1, 8, 8, 1)))


def test_cnn_parameter_count_and_features():
  x = jnp.ones((2, 28, 28, 1))
  model = CNN()
  variables = init(model, x)
  expected = (conv(3, 1, 32) + conv(3, 32, 64) + dense(7 * 7 * 64, 256)
              + dense(256, 10))
  assert count_params(variables) == expected
  assert model.apply(variables, x, method=CNN.features).shape == (2, 256)


def resnet20_count(num_classes=10):
  """Option-A ResNet-20: convs without bias, BatchNorm scale+bias per channel."""
  total = conv(3, 3, 16, bias=False) + 2 * 16
  c_in = 16
  for c in (16, 32, 64):
    for _ in range(3):
      total += conv(3, c_in, c, False) + conv(3, c, c, False) + 4 * c
      c_in = c
  return total + dense(64, num_classes)


def test_resnet20_parameter_count_and_batch_stats():
  variables = abstract_init(ResNet20(), jnp.ones((2, 32, 32, 3)))
  assert count_params(variables["params"]) == resnet20_count() == 269_722
  # Running mean and variance per BatchNorm channel: 19 BN layers.
  bn_channels = 16 + 3 * 2 * 16 + 3 * 2 * 32 + 3 * 2 * 64
  assert count_params(variables["batch_stats"]) == 2 * bn_channels


def test_resnet18_parameter_count_is_the_reference_11_17m():
  # The widely reported count of the CIFAR ResNet-18 (kuangliu/pytorch-cifar).
  variables = abstract_init(ResNet18(), jnp.ones((1, 32, 32, 3)))
  assert count_params(variables["params"]) == 11_173_962


def test_resnet_batchnorm_updates_running_statistics_in_training():
  model = ResNet(stage_sizes=(1,), stage_features=(4,),
                 projection_shortcut=False, num_classes=2)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3)) + 3.0
  variables = init(model, x)
  _, updates = jax.jit(lambda v: model.apply(v, x, train=True,
                                            mutable=["batch_stats"]))(variables)
  # BatchNorm_0 normalises the stem convolution (3x3, SAME, no bias):
  # running statistics <- 0.9 old + 0.1 batch (biased variance over B, H, W).
  stem = np.asarray(jax.lax.conv_general_dilated(
      x, variables["params"]["Conv_0"]["kernel"], (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC")))
  before = variables["batch_stats"]["BatchNorm_0"]
  after = updates["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(after["mean"], 0.9 * before["mean"]
                             + 0.1 * stem.mean((0, 1, 2)), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(after["var"], 0.9 * before["var"]
                             + 0.1 * stem.var((0, 1, 2)), rtol=1e-4)


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_recurrent_parameter_counts(cell, gates):
  hidden, features = 16, 5
  model = RecurrentClassifier(cell=cell, hidden_size=hidden, num_classes=3)
  params = abstract_init(model, jnp.ones((2, 7, features)))
  # Each gate: input kernel, recurrent kernel and one bias; GRU's candidate
  # carries a second bias on the recurrent side in Flax.
  per_gate = features * hidden + hidden * hidden + hidden
  extra = hidden if cell == "gru" else 0
  assert count_params(params) == gates * per_gate + extra + dense(hidden, 3)


class FlaxLSTM(nn.Module):
  """``nn.RNN`` over ``nn.OptimizedLSTMCell``: the reference for ``LSTM``."""
  num_classes: int | None = None  # With a class count: a whole classifier.

  @nn.compact
  def __call__(self, x):
    carry, _ = nn.RNN(nn.OptimizedLSTMCell(6), return_carry=True)(x)
    return carry if self.num_classes is None else nn.Dense(
        self.num_classes)(carry[1])


def test_lstm_classifier_initialises_as_with_flax_cell():
  x = jnp.ones((1, 5, 4))
  ours = init(RecurrentClassifier(cell="lstm", hidden_size=6, num_classes=3),
              x)
  flax_cell = init(FlaxLSTM(num_classes=3), x)
  assert jax.tree.structure(ours) == jax.tree.structure(flax_cell)
  assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, ours, flax_cell)))


def test_lstm_is_flax_optimized_lstm_cell_under_rnn():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4))
  ours = LSTM(6)
  variables = init(FlaxLSTM(), x)
  variables = jax.tree.map(lambda p: p + 0.1, variables)  # non-zero biases
  ours_variables = {"params": variables["params"]["OptimizedLSTMCell_0"]}
  for got, want in zip(ours.apply(ours_variables, x),
                       FlaxLSTM().apply(variables, x)):
    assert jnp.allclose(got, want, atol=1e-6)
  # The hand-written VJP: gradients of the last c and h with respect to
  # every parameter and to the input.
  loss = lambda apply: lambda v, inputs: sum(
      jnp.sum(jnp.sin(3 * s)) for s in apply(v, inputs))
  got = jax.jit(jax.grad(loss(ours.apply), (0, 1)))(ours_variables, x)
  want = jax.jit(jax.grad(loss(FlaxLSTM().apply), (0, 1)))(variables, x)
  assert jax.tree.structure(got[0]["params"]) == jax.tree.structure(
      want[0]["params"]["OptimizedLSTMCell_0"])
  for g, w in zip(jax.tree.leaves(got[0]) + [got[1]],
                  jax.tree.leaves(want[0]) + [want[1]]):
    assert jnp.allclose(g, w, rtol=1e-4, atol=1e-6)


def test_recurrent_reads_images_row_by_row():
  model = RecurrentClassifier(cell="gru", hidden_size=4, num_classes=2)
  image = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 2, 2))
  variables = init(model, image)
  apply = jax.jit(model.apply)
  as_rows = image.reshape(2, 3, 4)
  assert jnp.allclose(apply(variables, image), apply(variables, as_rows))


def test_transformer_dropout_is_off_in_eval_and_on_in_training():
  model = TransformerClassifier(num_classes=3, model_dim=8, num_heads=2,
                                num_layers=1, mlp_dim=8, dropout_rate=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4))
  variables = init(model, x)
  apply = jax.jit(model.apply, static_argnames="train")
  assert jnp.array_equal(apply(variables, x), apply(variables, x))
  a = apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
  b = apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
  assert not jnp.allclose(a, b)


def test_mlp_generator_is_its_layers_by_hand():
  """tanh(relu([z, embed(y)] W0 + b0) W1 + b1), reshaped to the image."""
  model = MLPGenerator((2, 3, 1), hidden=(5,), num_classes=4)
  z = jax.random.normal(jax.random.PRNGKey(0), (3, 6))
  labels = jnp.array([0, 3, 1])
  variables = model.init(jax.random.PRNGKey(1), z, labels)
  params = jax.tree.map(lambda p: np.asarray(p, np.float64) + 0.1,
                        variables["params"])  # non-zero biases
  x = np.concatenate([z, params["Embed_0"]["embedding"][labels]], -1)
  hidden = np.maximum(x @ params["Dense_0"]["kernel"]
                      + params["Dense_0"]["bias"], 0)
  pre_activation = (hidden @ params["Dense_1"]["kernel"]
                    + params["Dense_1"]["bias"])
  assert np.max(np.abs(pre_activation)) > 1  # tanh far from the identity
  images = model.apply({"params": jax.tree.map(jnp.float32, params)}, z, labels)
  np.testing.assert_allclose(
      images, np.tanh(pre_activation).reshape(3, 2, 3, 1), atol=1e-6)


def test_dcgan_generator_is_tanh_of_its_last_transposed_convolution():
  model = DCGANGenerator((8, 8, 1), width=8)
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
  variables = model.init(jax.random.PRNGKey(1), z)
  images, captured = model.apply(
      variables, z, capture_intermediates=lambda module, _: isinstance(
          module, nn.ConvTranspose), mutable=["intermediates"])
  pre_activation, = captured["intermediates"]["ConvTranspose_1"]["__call__"]
  assert pre_activation.shape == images.shape == (2, 8, 8, 1)
  assert jnp.array_equal(images, jnp.tanh(pre_activation))


def test_unknown_model_lists_the_choices():
  with pytest.raises(ValueError, match="unknown classifier 'vgg'.*cnn.*resnet20"):
    create_classifier("vgg", 10)
