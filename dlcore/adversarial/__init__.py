"""Generative adversarial networks.

Modules:
  losses     minimax, non-saturating, WGAN-GP, hinge and least-squares losses.
  state      ``GANState`` (two train states) and ``create_gan_state``.
  steps      ``gan_step``: n_critic discriminator updates, one generator update.
  objective  ``gan_objective``: the GAN as a ``dlcore.objective.Objective``.
  fcd        the Fréchet classifier distance and its cached classifier.
  train      ``GanConfig`` and ``train_gan(config, workdir)``.
"""

from dlcore.adversarial.losses import LOSSES, GanLoss, gradient_penalty
from dlcore.adversarial.objective import gan_objective
from dlcore.adversarial.state import GANState, create_gan_state, sample
from dlcore.adversarial.steps import gan_step, step_keys
from dlcore.adversarial.train import GanConfig, train_gan

__all__ = ["GANState", "GanConfig", "GanLoss", "LOSSES", "create_gan_state",
           "gan_objective", "gan_step", "gradient_penalty", "sample",
           "step_keys", "train_gan"]
