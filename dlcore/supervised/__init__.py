"""Supervised learning: classification and regression steps, and the classifier run."""

from dlcore.supervised.steps import TASKS, eval_step, mean_of_sums, train_step
from dlcore.supervised.train import (ClassifyConfig, create_optimizer, evaluate,
                                     train_and_evaluate)

__all__ = ["TASKS", "ClassifyConfig", "create_optimizer", "eval_step",
           "evaluate", "mean_of_sums", "train_and_evaluate", "train_step"]
