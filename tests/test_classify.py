"""``classify.py`` end to end: outputs, exact resume, divergence, bad input."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import small_classify_config, write_npz
from dlcore import experiment, files
from dlcore.checkpoint import Checkpointer
from dlcore.data import datasets
from dlcore.errors import ConfigError, NonFiniteLossError
from dlcore.optim import OptimizerConfig
from dlcore.supervised import ClassifyConfig, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def restore_params(workdir):
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, meta = ckpt.restore_latest()
  ckpt.close()
  return meta["step"], state["params"]


def strip_timing(records):
  return [{k: v for k, v in r.items() if k not in ("seconds", "steps_per_sec")}
          for r in records]


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


def test_help_lists_every_option_with_its_choices():
  result = subprocess.run([sys.executable, "experiments/classify.py", "--help"],
                          cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "COLUMNS": "80"})
  for field in dataclasses.fields(ClassifyConfig):
    if field.name != "optimizer":  # A section: its options are listed below.
      assert "--" + field.name.replace("_", "-") in result.stdout
  assert "--model {cnn,gru,lenet5,lstm,mlp,resnet18,resnet20,rnn,transformer}" \
      in result.stdout
  for field in dataclasses.fields(OptimizerConfig):
    assert "--optimizer." + field.name.replace("_", "-") in result.stdout


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
  straight = small_classify_config(tmp_path, workdir=str(tmp_path / "straight"))
  train_and_evaluate(straight, straight.workdir)

  interrupted = small_classify_config(tmp_path, workdir=str(tmp_path / "interrupted"))
  real_evaluate, calls = experiment.evaluate, []

  def evaluate_then_crash(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # During epoch 2's report: epoch 1 is checkpointed.
      raise KeyboardInterrupt
    return real_evaluate(*args, **kwargs)

  monkeypatch.setattr(experiment, "evaluate", evaluate_then_crash)
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(interrupted, interrupted.workdir)
  monkeypatch.setattr(experiment, "evaluate", real_evaluate)
  assert restore_params(interrupted.workdir)[0] == 6
  with pytest.raises(ConfigError, match="continue it with option resume"):
    train_and_evaluate(interrupted, interrupted.workdir)
  train_and_evaluate(dataclasses.replace(interrupted, resume=True),
                     interrupted.workdir)

  step_a, params_a = restore_params(straight.workdir)
  step_b, params_b = restore_params(interrupted.workdir)
  assert step_a == step_b == 18
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(a, b)
  assert strip_timing(files.read_jsonl(tmp_path / "straight" / "metrics.jsonl")) == \
      strip_timing(files.read_jsonl(tmp_path / "interrupted" / "metrics.jsonl"))


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
    train_and_evaluate(config, config.workdir)
  step, kept = restore_params(config.workdir)
  assert step == 6  # Epoch 1's checkpoint; nothing after it was saved.
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(kept))
  assert [r["step"] for r in files.read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [6]
  # Resuming repeats the same batches, so it stops at the same step.
  with pytest.raises(NonFiniteLossError, match=f"at step {bad_step} because"):
    train_and_evaluate(dataclasses.replace(config, resume=True), config.workdir)
  assert restore_params(config.workdir)[0] == 6


@pytest.mark.parametrize("changes,message", [
    ({"dataset": "imagenette2"}, "unknown dataset 'imagenette2'"),
    ({"model": "vgg16"}, "unknown model 'vgg16'; choose one of cnn, gru"),
    ({"batch_size": 97}, "batch size 97 must be between 1 and the 96"),
    ({"label_smoothing": 1.5}, "option label_smoothing must be in"),
    ({"epochs": 0}, "option epochs must be at least 1"),
])
def test_bad_input_stops_before_training(tmp_path, changes, message):
  config = small_classify_config(tmp_path, **changes)
  with pytest.raises(ConfigError, match=message):
    train_and_evaluate(config, config.workdir)
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_out_of_range_labels_and_unwritable_workdir(tmp_path):
  bad = write_npz(tmp_path / "bad.npz", y_test=np.full(20, 7))
  with pytest.raises(ConfigError, match=r"label 7 outside \[0, 4\)"):
    train_and_evaluate(small_classify_config(tmp_path, dataset=str(bad)), tmp_path / "r")
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  with pytest.raises(ConfigError, match="is not writable"):
    train_and_evaluate(small_classify_config(tmp_path), blocker / "run")


def test_cli_prints_one_sentence_for_bad_input(tmp_path):
  result = subprocess.run(
      [sys.executable, "experiments/classify.py", "--dataset", "nope.npz",
       "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == \
      "error: dataset file 'nope.npz' does not exist"
  assert "Traceback" not in result.stderr


def test_training_runs_on_a_tfds_dataset_by_name(tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    config = small_classify_config(tmp_path, dataset="mnist", data_dir=str(tmp_path),
                          epochs=1, batch_size=8)
    summary = train_and_evaluate(config, config.workdir)
  assert summary["num_train"] == summary["num_test"] == 40
  records = files.read_jsonl(tmp_path / "run" / "metrics.jsonl")
  assert [r["step"] for r in records] == [5]


@pytest.mark.slow
def test_the_default_digits_run_in_bfloat16_is_within_half_a_point(tmp_path):
  """Mixed precision: bfloat16 compute, float32 parameters, the same accuracy."""
  summaries, params = {}, {}
  for dtype in ("float32", "bfloat16"):
    workdir = tmp_path / dtype
    summaries[dtype] = train_and_evaluate(ClassifyConfig(dtype=dtype), workdir)
    params[dtype] = restore_params(workdir)[1]
  assert summaries["float32"]["test_accuracy"] >= 0.97
  assert abs(summaries["bfloat16"]["test_accuracy"]
             - summaries["float32"]["test_accuracy"]) <= 0.005
  assert {leaf.dtype for leaf in jax.tree.leaves(params["bfloat16"])} == {
      np.dtype("float32")}
  # The two runs computed differently (bfloat16 rounding), not identically.
  assert any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(params["float32"]), jax.tree.leaves(params["bfloat16"])))
