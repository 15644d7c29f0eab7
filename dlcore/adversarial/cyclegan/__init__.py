"""CycleGAN: unpaired image-to-image translation (Zhu et al., 2017).

Modules:
  pool       ``ImagePool``: earlier fakes in the state, the paper's swap rule.
  state      ``CycleGanState`` (G, F, D_A, D_B and two pools), ``NetworkSpec``.
  steps      ``cyclegan_step``: both generators, then both discriminators.
  objective  ``cyclegan_objective``: CycleGAN as a ``dlcore.objective.Objective``.
  quality    what a translation keeps: label preservation, FCD, cycle L1.
  train      ``CycleGanConfig`` and ``train_cyclegan(config, workdir)``.
"""

from dlcore.adversarial.cyclegan.objective import cyclegan_objective
from dlcore.adversarial.cyclegan.pool import ImagePool, create_pool, query_pool
from dlcore.adversarial.cyclegan.state import (CycleGanState, NetworkSpec,
                                               create_cyclegan_state,
                                               translate_ab, translate_ba)
from dlcore.adversarial.cyclegan.steps import cyclegan_step
from dlcore.adversarial.cyclegan.train import CycleGanConfig, train_cyclegan

__all__ = ["CycleGanConfig", "CycleGanState", "ImagePool", "NetworkSpec",
           "create_cyclegan_state", "create_pool", "cyclegan_objective",
           "cyclegan_step", "query_pool", "train_cyclegan", "translate_ab",
           "translate_ba"]
