"""``classify.py`` end to end: outputs, divergence, TFDS by name, bfloat16."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import small_classify_config
from dlcore import files
from dlcore.checkpoint import Checkpointer
from dlcore.data import datasets
from dlcore.errors import NonFiniteLossError
from dlcore.supervised import ClassifyConfig, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def restore_params(workdir):
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, meta = ckpt.restore_latest()
  ckpt.close()
  return meta["step"], state["params"]


@pytest.mark.slow
def test_cli_trains_on_digits_and_writes_every_output(tmp_path, data_dir):
  workdir = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "experiments/classify.py", "--epochs", "2",
       "--data-dir", data_dir, "--workdir", str(workdir)],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
  assert "test accuracy" in result.stdout
  records = files.read_jsonl(workdir / "metrics.jsonl")
  assert [r["epoch"] for r in records] == [1, 2]
  for key in ("epoch", "train_loss", "train_accuracy", "test_loss",
              "test_accuracy", "steps_per_sec"):
    assert key in records[-1]
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["test_accuracy"] == records[-1]["test_accuracy"] > 0.5
  assert summary["config"]["epochs"] == 2 and "resume" not in summary["config"]
  # The Flax MNIST CNN on 8x8 images: two 3x3 convolutions (1->32->64), two
  # 2x2 poolings leave 2x2x64 = 256 features, then 256 -> 256 -> 10.
  cnn_params = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (256 * 256 + 256) + (
      256 * 10 + 10)
  assert summary["num_params"] == cnn_params
  assert f"total: {cnn_params:,} parameters" in (workdir / "model.txt").read_text()
  assert (workdir / "curves.png").read_bytes()[:4] == b"\x89PNG"
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert Checkpointer(workdir / "checkpoints").latest_step() == 2 * (1437 // 32)


def poisoned_npz(tmp_path, seed: int) -> tuple[str, int]:
  """100 float images, one NaN: ``(path, step)``, the first step whose batch holds it.

  With batches of 16, each epoch (6 steps) leaves 4 examples out; the
  poisoned one is left out of epoch 1 and falls in a batch of epoch 2.
  """
  first, second = (np.random.default_rng([seed, epoch]).permutation(100)
                   for epoch in (0, 1))
  for example in first[96:]:
    position = int(np.flatnonzero(second == example)[0])
    if position < 96:
      break
  else:
    raise AssertionError(f"seed {seed}: pick another")
  rng = np.random.default_rng(1)
  images = rng.random((100, 8, 8), np.float32)
  images[example] = np.nan
  path = tmp_path / "poisoned.npz"
  np.savez(path, x_train=images, y_train=np.arange(100) % 4,
           x_test=np.zeros((20, 8, 8), np.float32), y_test=np.arange(20) % 4)
  return str(path), 6 + position // 16 + 1


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  # The loader refuses NaN pixels; here one slips past it to reach the loop.
  monkeypatch.setattr(datasets, "check_dataset", lambda data: None)
  dataset, bad_step = poisoned_npz(tmp_path, seed=0)
  assert 7 <= bad_step <= 12  # In epoch 2, after epoch 1's checkpoint.
  config = small_classify_config(tmp_path, dataset=dataset, epochs=3)
  with pytest.raises(NonFiniteLossError,
                     match=f"loss became NaN or infinite at step {bad_step} "
                     r"because its batch held NaN or infinite values \(in "
                     "image\\): the data is at fault, not the learning rate;"):
    train_and_evaluate(config)
  step, kept = restore_params(config.workdir)
  assert step == 6  # Epoch 1's checkpoint; nothing after it was saved.
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(kept))
  assert [r["step"] for r in files.read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [6]
  # Resuming repeats the same batches, so it stops at the same step.
  with pytest.raises(NonFiniteLossError, match=f"at step {bad_step} because"):
    train_and_evaluate(dataclasses.replace(config, resume=True))
  assert restore_params(config.workdir)[0] == 6


def test_training_runs_on_a_tfds_dataset_by_name(tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    config = small_classify_config(tmp_path, dataset="mnist", data_dir=str(tmp_path),
                          epochs=1, batch_size=8)
    summary = train_and_evaluate(config)
  assert summary["num_train"] == summary["num_test"] == 40
  records = files.read_jsonl(tmp_path / "run" / "metrics.jsonl")
  assert [r["step"] for r in records] == [5]


@pytest.mark.slow
def test_the_default_digits_run_in_bfloat16_is_within_half_a_point(tmp_path):
  """Mixed precision: bfloat16 compute, float32 parameters, the same accuracy."""
  summaries, params = {}, {}
  for dtype in ("float32", "bfloat16"):
    workdir = tmp_path / dtype
    summaries[dtype] = train_and_evaluate(ClassifyConfig(dtype=dtype,
                                                         workdir=str(workdir)))
    params[dtype] = restore_params(workdir)[1]
  assert summaries["float32"]["test_accuracy"] >= 0.97
  assert abs(summaries["bfloat16"]["test_accuracy"]
             - summaries["float32"]["test_accuracy"]) <= 0.005
  assert {leaf.dtype for leaf in jax.tree.leaves(params["bfloat16"])} == {
      np.dtype("float32")}
  # The two runs computed differently (bfloat16 rounding), not identically.
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(params["float32"]), jax.tree.leaves(params["bfloat16"])))
