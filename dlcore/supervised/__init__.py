"""Supervised learning: classification and regression.

  dlcore.supervised.config     ``ClassifyConfig``, ``FinetuneConfig``.
  dlcore.supervised.losses     cross-entropy and squared error per example.
  dlcore.supervised.steps      ``train_step``, ``eval_step``, ``random_shift``.
  dlcore.supervised.objective  ``classifier_objective``.
  dlcore.supervised.train      ``train_and_evaluate(config)``, ``finetune(config)``.
"""

from dlcore.supervised.config import ClassifyConfig, FinetuneConfig
from dlcore.supervised.objective import classifier_objective
from dlcore.supervised.steps import TASKS, eval_step, train_step
from dlcore.supervised.train import finetune, train_and_evaluate

__all__ = ["TASKS", "ClassifyConfig", "FinetuneConfig", "classifier_objective",
           "eval_step", "finetune", "train_and_evaluate", "train_step"]
