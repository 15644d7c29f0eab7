"""CycleGAN: unpaired image-to-image translation (Zhu et al., 2017).

  dlcore.cyclegan.config     ``CycleGanConfig``.
  dlcore.cyclegan.pool       ``ImagePool``: earlier fakes in the state, the paper's swap rule.
  dlcore.cyclegan.state      ``CycleGanState`` (G, F, D_A, D_B and two pools), ``NetworkSpec``.
  dlcore.cyclegan.steps      ``cyclegan_step``: both generators, then both discriminators.
  dlcore.cyclegan.objective  ``cyclegan_objective``.
  dlcore.cyclegan.quality    what a translation keeps: label preservation, FCD, cycle L1.
  dlcore.cyclegan.train      ``train_and_evaluate(config)``.
"""

from dlcore.cyclegan.config import CycleGanConfig
from dlcore.cyclegan.objective import cyclegan_objective
from dlcore.cyclegan.pool import ImagePool, create_pool, query_pool
from dlcore.cyclegan.state import (CycleGanState, NetworkSpec,
                                   create_cyclegan_state, translate_ab,
                                   translate_ba)
from dlcore.cyclegan.steps import cyclegan_step
from dlcore.cyclegan.train import train_and_evaluate

__all__ = ["CycleGanConfig", "CycleGanState", "ImagePool", "NetworkSpec",
           "create_cyclegan_state", "create_pool", "cyclegan_objective",
           "cyclegan_step", "query_pool", "train_and_evaluate", "translate_ab",
           "translate_ba"]
