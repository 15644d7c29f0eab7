"""The benchmark workloads: one ``Workload`` spec per kind of train step.

Usage::

  workload = WORKLOADS["lenet5"]
  batch = workload.make_batch(np.random.default_rng(0), 128)  # numpy pytree
  step, state = workload.dlcore(batch, "float32", key)          # jitted step
  step, state = workload.baseline(batch, "float32", key)        # hand-written
  torch_step = workload.torch(batch, "float32")                 # or None

A spec says how to make a batch of random data and how to build each side
from it; the harness times every side on that same batch. Adding a workload
is a few lines: a ``Workload(...)`` passed to ``register``. JAX sides return
``(jitted step, initial state)`` with ``step(state, batch, key) -> (state,
metrics)``, the one step contract of dlcore.

The supervised workloads train dlcore's classifiers with Adam (lr 1e-3) on
MNIST-shaped (28x28x1) or CIFAR-shaped (32x32x3) random images with 10
classes. ``bfloat16`` keeps float32 parameters and optimizer state and runs
the model on bfloat16 copies (mixed precision), on every side alike.
"""

import dataclasses
import importlib.util
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from dlcore import state as dlcore_state
from dlcore.models import create_classifier
from dlcore.supervised import steps as supervised_steps

JaxBuilder = Callable[[Any, str, jax.Array], tuple[Callable, Any]]
TorchBuilder = Callable[[dict[str, np.ndarray], str], Callable[[], None]]
DTYPES = ("float32", "bfloat16")
LEARNING_RATE = 1e-3
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Workload:
  """How to build and feed one benchmark; see the module docstring."""
  name: str
  description: str
  make_batch: Callable[[np.random.Generator, int], Any]
  dlcore: JaxBuilder
  baseline: JaxBuilder | None = None
  torch: TorchBuilder | None = None
  batch_size: int = 128
  quick_batch_size: int = 128
  sweep: tuple[int, ...] = ()        # batch sizes of the scaling sweep
  quick_sweep: tuple[int, ...] = ()
  in_quick: bool = True              # part of ``--quick``'s default set
  # FLOPs of one step when XLA's cost analysis undercounts them: it counts
  # a loop body (``lax.scan``, e.g. ``nn.RNN``) once, not once per iteration.
  # Returning None reports them as unknown.
  flops_per_step: Callable[[int], float | None] | None = None
  unit: str = "examples"             # what ``items_per_step`` counts
  items_per_step: Callable[[int], int] = lambda batch_size: batch_size


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
  WORKLOADS[workload.name] = workload
  return workload


def torch_available() -> bool:
  return importlib.util.find_spec("torch") is not None


class InDtype:
  """``model`` run on ``dtype`` copies of its input and float32 parameters.

  Has the ``init`` / ``apply`` of a Flax module, so the train states take
  it as their model: parameters and optimizer state stay float32 (the cast
  is differentiated through), outputs come back float32.
  """

  def __init__(self, model: nn.Module, dtype: str):
    self.model, self.dtype = model, jnp.dtype(dtype)

  def init(self, rngs, x, **kwargs):
    return self.model.init(rngs, x, **kwargs)

  def apply(self, variables, x, **kwargs):
    cast = lambda p: p.astype(self.dtype)
    variables = {**variables, "params": jax.tree.map(cast, variables["params"])}
    out = self.model.apply(variables, x.astype(self.dtype), **kwargs)
    if kwargs.get("mutable"):
      return out[0].astype(jnp.float32), out[1]
    return out.astype(jnp.float32)


def in_dtype(model: nn.Module, dtype: str):
  """``model`` computing in ``dtype``; float32 returns it unchanged."""
  return model if dtype == "float32" else InDtype(model, dtype)


def image_batch(shape: tuple[int, int, int]):
  """Uniform images ``[B, *shape]`` in [0, 1) and uniform labels ``[B]``."""
  def make(rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
    return {"image": rng.random((batch_size,) + shape, dtype=np.float32),
            "label": rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)}
  return make


def dlcore_classifier(model_name: str) -> JaxBuilder:
  """dlcore's own path: ``create_train_state`` + ``supervised.train_step``."""
  def build(batch, dtype, key):
    model = in_dtype(create_classifier(model_name, NUM_CLASSES), dtype)
    state = nn.meta.unbox(dlcore_state.create_train_state(
        model, optax.adam(LEARNING_RATE), batch["image"][:1], key))
    step = jax.jit(supervised_steps.train_step, donate_argnums=0,
                   static_argnames=("task", "axis_name"))
    return step, state
  return build


def baseline_classifier(model_name: str) -> JaxBuilder:
  """The hand-written Flax + Optax step on the same model and optimizer."""
  def build(batch, dtype, key):
    model = in_dtype(create_classifier(model_name, NUM_CLASSES), dtype)
    state = nn.meta.unbox(create_train_state(
        model, optax.adam(LEARNING_RATE), batch["image"], key))
    step_fn = (train_step_batchnorm if jax.tree.leaves(
        state.batch_stats) else train_step)
    return jax.jit(step_fn, donate_argnums=0), state
  return build


def torch_classifier(model_name: str) -> TorchBuilder | None:
  if not torch_available():
    return None

  def build(batch, dtype):
    from benchmarks import torch_models  # pylint: disable=import-outside-toplevel
    return torch_models.make_step(model_name, batch, dtype,
                                  torch_models.default_device())
  return build


def classifier_workload(name: str, description: str,
                        shape: tuple[int, int, int], *, with_torch: bool,
                        **options) -> Workload:
  """A supervised workload on dlcore's registered classifier ``name``."""
  return register(Workload(
      name=name, description=description, make_batch=image_batch(shape),
      dlcore=dlcore_classifier(name), baseline=baseline_classifier(name),
      torch=torch_classifier(name) if with_torch else None, **options))


MNIST, CIFAR = (28, 28, 1), (32, 32, 3)
classifier_workload("mlp", "MLP 784-256-128-10, MNIST shape", MNIST,
                    with_torch=True, sweep=(32, 128, 512, 2048),
                    quick_sweep=(32, 128, 512))
classifier_workload("lenet5", "LeNet-5 (tanh, avg-pool), MNIST shape", MNIST,
                    with_torch=True)
classifier_workload("resnet20", "ResNet-20 with BatchNorm, CIFAR shape", CIFAR,
                    with_torch=False, quick_batch_size=16,
                    sweep=(16, 32, 64, 128), quick_sweep=(8, 16))


def lstm_flops(batch_size: int, steps: int = 28, features: int = 28,
               hidden: int = 128) -> float:
  """Matmul FLOPs of an LSTM train step: forward ``2BT * 4H(F + H)``, x3 with backward."""
  return 3 * 2 * batch_size * steps * 4 * hidden * (features + hidden)


def transformer_flops(batch_size: int, tokens: int = 28, features: int = 28,
                      width: int = 64, mlp: int = 128, layers: int = 2,
                      classes: int = 10) -> float:
  """Model FLOPs of a train step of ``TransformerClassifier``: 3x the forward's.

  Per token: the embedding ``2 F d``; per layer the projections ``8 d^2``,
  the MLP ``4 d m`` and attention's two products ``4 T d``; per example the
  read-out ``2 d C``. (Layer norms, softmax and GELU are not counted, as
  in MFU's usual convention.)
  """
  per_token = 2 * features * width + layers * (
      8 * width ** 2 + 4 * width * mlp + 4 * tokens * width)
  return 3 * batch_size * (tokens * per_token + 2 * width * classes)


classifier_workload("lstm", "LSTM 128 units over 28 image rows", MNIST,
                    with_torch=True, flops_per_step=lstm_flops)
classifier_workload("transformer", "Transformer encoder, 2 layers, d=64, "
                    "28 row tokens", MNIST, with_torch=False,
                    flops_per_step=transformer_flops)
classifier_workload("resnet18", "ResNet-18 (CIFAR layout) with BatchNorm, "
                    "CIFAR shape", CIFAR, with_torch=False, in_quick=False)
classifier_workload("resnet50_imagenet", "ResNet-50 (torchvision layout), "
                    "ImageNet shape 224x224x3", (224, 224, 3),
                    with_torch=False, in_quick=False, batch_size=32)


# The hand-written baseline of the supervised workloads, as the Flax
# examples write it (``examples/mnist`` without BatchNorm,
# ``examples/imagenet`` with it): a ``TrainState`` with ``batch_stats``, a
# loss closure, ``jax.value_and_grad`` and ``apply_gradients``. Nothing here
# comes from dlcore but the model definitions (plain linen modules), so
# ``dlcore / baseline`` step time measures the framework's cost. The other
# workloads' files hold theirs, written the same way.


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       images: jax.Array, key: jax.Array) -> TrainState:
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         images[:1], train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           tx=tx, batch_stats=variables.get("batch_stats", {}))


def _loss_and_accuracy(logits, labels):
  one_hot = jax.nn.one_hot(labels, logits.shape[-1])
  loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, accuracy


def train_step(state: TrainState, batch, key):
  """One Adam step for a model without BatchNorm."""
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, batch["image"], train=True,
                            rngs={"dropout": key})
    return _loss_and_accuracy(logits, batch["label"])

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads)
  return state, {"loss": loss, "accuracy": accuracy}


def train_step_batchnorm(state: TrainState, batch, key):
  """One Adam step for a model with BatchNorm (batch statistics updated)."""
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    loss, accuracy = _loss_and_accuracy(logits, batch["label"])
    return loss, (accuracy, updates["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "accuracy": accuracy}


# The other workloads register themselves on import, each beside its own
# hand-written baseline.
from benchmarks import cyclegan, generative, policy, qlearning, segmentation  # pylint: disable=wrong-import-position,unused-import,cyclic-import
