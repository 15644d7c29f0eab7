"""Supervised learning: classification and regression steps, and the classifier run."""

from dlcore.supervised.steps import (TASKS, classifier_objective, eval_step,
                                     train_step)
from dlcore.supervised.finetune import FinetuneConfig, finetune
from dlcore.supervised.train import ClassifyConfig, train_and_evaluate

__all__ = ["TASKS", "ClassifyConfig", "FinetuneConfig", "classifier_objective",
           "eval_step", "finetune", "train_and_evaluate", "train_step"]
