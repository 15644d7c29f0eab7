"""Generative adversarial networks.

  dlcore.adversarial.config     ``GanConfig``.
  dlcore.adversarial.losses     minimax, non-saturating, WGAN-GP, hinge and least-squares losses.
  dlcore.adversarial.state      ``GANState`` (two train states) and ``create_gan_state``.
  dlcore.adversarial.steps      ``gan_step``: n_critic discriminator updates, one generator update.
  dlcore.adversarial.objective  ``gan_objective``: the GAN as a ``dlcore.objective.Objective``.
  dlcore.adversarial.fcd        the Fréchet classifier distance and its cached classifier.
  dlcore.adversarial.train      ``train_and_evaluate(config)``.
"""

from dlcore.adversarial.config import GanConfig
from dlcore.adversarial.losses import LOSSES, GanLoss, gradient_penalty
from dlcore.adversarial.objective import gan_objective
from dlcore.adversarial.state import GANState, create_gan_state, sample
from dlcore.adversarial.steps import gan_step, step_keys
from dlcore.adversarial.train import train_and_evaluate

__all__ = ["GANState", "GanConfig", "GanLoss", "LOSSES", "create_gan_state",
           "gan_objective", "gan_step", "gradient_penalty", "sample",
           "step_keys", "train_and_evaluate"]
