"""PyTorch eager counterparts of the seed models, for the side-by-side timings.

Usage (only when ``torch`` is installed: the optional ``bench`` extra)::

  step = make_step("lenet5", batch, dtype="float32")   # batch: NHWC numpy
  step()   # one Adam step on the same data dlcore trains on
  gan_step = make_gan_step(batch)   # one D step, then one G step

Shapes and layer sizes follow the dlcore models (``dlcore/models``):
the MLP 784-256-128-10 with ReLU, LeNet-5 with tanh and average pooling
(``C1 SAME``, ``C3 VALID``), the single-layer LSTM of 128 units reading an
image row by row, and the GAN's MLP generator (``z [B, 64]`` -> 256 -> 256
ReLU -> tanh image) and discriminator (256 -> 256 LeakyReLU(0.2) -> one
logit). Images arrive NHWC and are transposed once, before timing, to
PyTorch's NCHW. The optimizer is ``torch.optim.Adam(lr=1e-3)``, as on the
JAX side (for the GAN, Adam(2e-4, betas (0.5, 0.999)) for each network, as
dlcore's ``create_gan_state``); bfloat16 runs the forward pass under
``torch.autocast``.
"""

import contextlib

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):

  def __init__(self, in_features: int, hidden=(256, 128), num_classes=10):
    super().__init__()
    sizes = (in_features,) + tuple(hidden)
    self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
    self.head = nn.Linear(sizes[-1], num_classes)

  def forward(self, x):
    x = x.flatten(1)
    for layer in self.hidden:
      x = F.relu(layer(x))
    return self.head(x)


class LeNet5(nn.Module):

  def __init__(self, in_channels: int, image_size: int, num_classes=10):
    super().__init__()
    self.c1 = nn.Conv2d(in_channels, 6, 5, padding=2)
    self.c3 = nn.Conv2d(6, 16, 5)
    side = (image_size // 2 - 4) // 2
    self.f5 = nn.Linear(16 * side * side, 120)
    self.f6 = nn.Linear(120, 84)
    self.head = nn.Linear(84, num_classes)

  def forward(self, x):
    x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
    x = F.avg_pool2d(torch.tanh(self.c3(x)), 2)
    x = torch.tanh(self.f5(x.flatten(1)))
    return self.head(torch.tanh(self.f6(x)))


class LSTMClassifier(nn.Module):

  def __init__(self, features: int, hidden=128, num_classes=10):
    super().__init__()
    self.lstm = nn.LSTM(features, hidden, batch_first=True)
    self.head = nn.Linear(hidden, num_classes)

  def forward(self, x):
    _, (h, _) = self.lstm(x)
    return self.head(h[-1])


class MLPGenerator(nn.Module):
  """``z [B, latent_dim]`` -> images ``[B, *image_shape]`` in [-1, 1]."""

  def __init__(self, image_shape, latent_dim=64, hidden=(256, 256)):
    super().__init__()
    sizes = (latent_dim,) + tuple(hidden)
    self.image_shape = tuple(image_shape)
    self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
    self.out = nn.Linear(sizes[-1], int(np.prod(image_shape)))

  def forward(self, z):
    for layer in self.hidden:
      z = F.relu(layer(z))
    return torch.tanh(self.out(z)).reshape((z.shape[0],) + self.image_shape)


class MLPDiscriminator(nn.Module):
  """Images ``[B, ...]`` -> logits ``[B]``."""

  def __init__(self, in_features: int, hidden=(256, 256)):
    super().__init__()
    sizes = (in_features,) + tuple(hidden)
    self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
    self.head = nn.Linear(sizes[-1], 1)

  def forward(self, x):
    x = x.flatten(1)
    for layer in self.hidden:
      x = F.leaky_relu(layer(x), 0.2)
    return self.head(x)[:, 0]


def build_model(name: str, image_shape) -> tuple[nn.Module, str]:
  """The model and the input layout it wants: ``nchw``, ``flat`` or ``rows``."""
  height, width, channels = image_shape
  if name == "mlp":
    return MLP(height * width * channels), "flat"
  if name == "lenet5":
    return LeNet5(channels, height), "nchw"
  if name == "lstm":
    return LSTMClassifier(width * channels), "rows"
  raise KeyError(f"no PyTorch model for {name!r}")


def _to_torch(images: np.ndarray, layout: str) -> torch.Tensor:
  if layout == "nchw":
    images = images.transpose(0, 3, 1, 2)
  elif layout == "rows":
    images = images.reshape(images.shape[0], images.shape[1], -1)
  return torch.from_numpy(np.ascontiguousarray(images))


def make_step(name: str, batch: dict[str, np.ndarray], dtype: str,
              device: str = "cpu"):
  """A closure running one supervised Adam step of model ``name`` on ``batch``."""
  torch.manual_seed(0)
  model, layout = build_model(name, batch["image"].shape[1:])
  model = model.to(device)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  images = _to_torch(batch["image"], layout).to(device)
  labels = torch.from_numpy(batch["label"].astype(np.int64)).to(device)
  autocast = (contextlib.nullcontext if dtype == "float32" else
              lambda: torch.autocast(device, dtype=torch.bfloat16))
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast():
      loss = F.cross_entropy(model(images).float(), labels)
    loss.backward()
    optimizer.step()
    sync()

  return step


def default_device() -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def make_gan_step(batch: dict[str, np.ndarray], device: str = "cpu",
                  latent_dim: int = 64):
  """A closure running one MLP GAN iteration on ``batch["image"]`` (NHWC, [-1, 1]).

  As dlcore's ``gan_step`` with the non-saturating loss: one D step on
  ``mean softplus(-D(x)) + mean softplus(D(G(z)))``, then one G step on
  ``mean softplus(-D(G(z')))`` with fresh noise ``z'``, against the updated
  D (whose parameters get no gradient in the G step).
  """
  torch.manual_seed(0)
  image_shape = batch["image"].shape[1:]
  generator = MLPGenerator(image_shape, latent_dim).to(device)
  discriminator = MLPDiscriminator(int(np.prod(image_shape))).to(device)
  g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4,
                                 betas=(0.5, 0.999))
  d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4,
                                 betas=(0.5, 0.999))
  real = torch.from_numpy(batch["image"]).to(device)
  batch_size = real.shape[0]
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def step():
    with torch.no_grad():
      fake = generator(torch.randn(batch_size, latent_dim, device=device))
    d_optimizer.zero_grad(set_to_none=True)
    d_loss = (F.softplus(-discriminator(real)).mean()
              + F.softplus(discriminator(fake)).mean())
    d_loss.backward()
    d_optimizer.step()
    discriminator.requires_grad_(False)
    g_optimizer.zero_grad(set_to_none=True)
    fake = generator(torch.randn(batch_size, latent_dim, device=device))
    F.softplus(-discriminator(fake)).mean().backward()
    g_optimizer.step()
    discriminator.requires_grad_(True)
    sync()

  return step
