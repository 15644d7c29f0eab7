"""The one loop: cadences, writers, AOT compilation, resume refusal, preemption."""

import dataclasses
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (load_script, small_classify_config, tensorboard_values,
                      write_npz)
from dlcore import files, loop
from dlcore.checkpoint import Checkpointer
from dlcore.errors import ConfigError
from dlcore.supervised import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[1]


def checkpoint_steps(workdir) -> list[int]:
  return sorted(int(p.name) for p in (pathlib.Path(workdir) / "checkpoints")
                .iterdir() if p.name.isdigit())


def test_cadences_are_independent_and_tensorboard_holds_the_records(tmp_path):
  config = small_classify_config(tmp_path, epochs=2, log_every=2, eval_every=6,
                        checkpoint_every=4)  # 12 steps: 6 per epoch.
  train_and_evaluate(config)
  records = files.read_jsonl(tmp_path / "run" / "metrics.jsonl")
  assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
  assert [r["step"] for r in records if "test_loss" in r] == [6, 12]
  assert all("train_loss" in r for r in records)
  assert [r["epoch"] for r in records if r["step"] % 6 == 0] == [1, 2]
  assert checkpoint_steps(config.workdir) == [4, 8, 12]  # The newest three.
  scalars = tensorboard_values(tmp_path / "run" / "tensorboard", "simple_value")
  assert sorted(scalars["train_loss"]) == [2, 4, 6, 8, 10, 12]
  for record in records:
    for name in ("train_loss", "train_accuracy", "test_loss"):
      if name in record:
        assert scalars[name][record["step"]] == pytest.approx(
            record[name], rel=1e-6)


def test_resume_with_different_options_is_refused_naming_them(tmp_path):
  config = small_classify_config(tmp_path, epochs=1)
  train_and_evaluate(config)
  changed = dataclasses.replace(
      config, resume=True, batch_size=8,
      optimizer=dataclasses.replace(config.optimizer, lr=1e-3))
  with pytest.raises(ConfigError, match=r"cannot resume: option batch_size, "
                     r"option optimizer\.lr differ from the run checkpointed"):
    train_and_evaluate(changed)
  # Options that do not change what is computed may differ.
  same = dataclasses.replace(config, resume=True, epochs=1, devices=1)
  assert train_and_evaluate(same)["steps"] == 6


def test_records_after_the_checkpoint_and_a_torn_line_are_dropped_on_resume(tmp_path):
  config = small_classify_config(tmp_path, epochs=2, checkpoint_every=6, log_every=3)
  train_and_evaluate(config)
  workdir = tmp_path / "run"
  path = workdir / "metrics.jsonl"
  straight = files.read_jsonl(path)
  shutil.rmtree(workdir / "checkpoints" / "12")  # Killed before saving 12...
  with open(path, "a", encoding="utf-8") as f:
    f.write('{"step": 13, "train_lo')  # ... in the middle of a write.
  train_and_evaluate(dataclasses.replace(config, resume=True))
  lines = path.read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [3, 6, 9, 12]
  drop_time = lambda r: {k: v for k, v in r.items()
                         if k not in ("seconds", "steps_per_sec")}
  assert [drop_time(json.loads(line)) for line in lines] == [
      drop_time(r) for r in straight]


class CountingStep:
  """A jitted step that counts its calls and its ahead-of-time compilations."""

  def __init__(self):
    self.calls, self.lowered = 0, 0
    self._step = jax.jit(lambda s, b, k: ({"x": s["x"] + b}, {"loss": s["x"]}))

  def __call__(self, *args):
    self.calls += 1
    return self._step(*args)

  def lower(self, *args):
    self.lowered += 1
    return self._step.lower(*args)


def test_the_step_is_compiled_ahead_of_time_and_never_run_for_nothing(tmp_path):
  step = CountingStep()
  state, history = loop.train(
      {"x": jnp.zeros(())}, step,
      lambda start: iter(lambda: jnp.ones(()), None),
      key=jax.random.PRNGKey(0), num_steps=5, workdir=tmp_path,
      every=loop.Cadences(log=5, eval=0, sample=0, checkpoint=0))
  assert (step.calls, step.lowered) == (5, 1)
  assert float(state["x"]) == 5.0
  assert isinstance(history.compile_seconds, float)
  # The mean of the losses 0, 1, 2, 3, 4 of the five steps.
  assert history.records == [{"step": 5, "seconds": history.records[0]["seconds"],
                               "steps_per_sec": history.records[0]["steps_per_sec"],
                               "train_loss": 2.0}]


CLI = ["--model", "mlp", "--batch-size", "8", "--log-every", "5",
       "--eval-every", "600", "--checkpoint-every", "300"]


@pytest.mark.slow
def test_sigterm_saves_and_resume_equals_an_uninterrupted_run(tmp_path):
  """A real SIGTERM to a real training process, then ``--resume``: the same parameters."""
  npz = write_npz(tmp_path / "data.npz", n_train=96, n_test=30)
  argv = CLI + ["--dataset", str(npz), "--epochs", "100"]  # 1,200 steps.
  parted, straight = tmp_path / "parted", tmp_path / "straight"
  process = subprocess.Popen(
      [sys.executable, "experiments/classify.py", *argv, "--workdir",
       str(parted)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  metrics = parted / "metrics.jsonl"
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.read_text()) and time.time() < deadline:
    time.sleep(0.02)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 75, err
  stopped_at = checkpoint_steps(parted)[-1]
  assert 0 < stopped_at < 1200
  assert err.strip().splitlines()[-1] == (
      f"error: SIGTERM received: stopped after step {stopped_at} and saved a "
      f"checkpoint in {str(parted)!r}; run the same command with --resume to "
      "continue exactly where it stopped")

  classify = load_script("classify")
  classify.main(argv + ["--workdir", str(parted), "--resume"])
  classify.main(argv + ["--workdir", str(straight)])
  restored = []
  for workdir in (parted, straight):
    checkpointer = Checkpointer(workdir / "checkpoints")
    restored.append(checkpointer.restore_latest()[0]["params"])
    checkpointer.close()
  assert checkpoint_steps(parted)[-1] == checkpoint_steps(straight)[-1] == 1200
  for a, b in zip(jax.tree.leaves(restored[0]), jax.tree.leaves(restored[1])):
    np.testing.assert_array_equal(a, b)


def test_the_steps_never_touch_the_host(tmp_path):
  """The loop runs its steps under JAX's transfer guard: placed batches pass, host ones are caught."""
  step = jax.jit(lambda s, b, k: ({"x": s["x"] + b},
                                  {"loss": s["x"] + jax.random.uniform(k)}))
  every = loop.Cadences(log=3, eval=0, sample=0, checkpoint=0)
  placed = lambda start: iter(lambda: jax.device_put(np.float32(1)), None)
  state, history = loop.train(
      {"x": jnp.zeros(())}, step, placed, key=jax.random.PRNGKey(0),
      num_steps=6, workdir=tmp_path / "placed", every=every)
  assert float(state["x"]) == 6.0
  # The keys are fold_in(key, s), folded on the device.
  draws = [float(jax.random.uniform(jax.random.fold_in(
      jax.random.PRNGKey(0), s))) for s in range(6)]
  assert history.records[-1]["train_loss"] == pytest.approx(
      np.mean(np.arange(3, 6) + np.array(draws[3:])), rel=1e-6)
  host = lambda start: iter(lambda: np.float32(1), None)  # Never placed.
  with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
    loop.train({"x": jnp.zeros(())}, step, host, key=jax.random.PRNGKey(0),
               num_steps=2, workdir=tmp_path / "host", every=every)


def test_divergence_names_its_cause_only_when_it_knows_it():
  from dlcore import errors  # pylint: disable=import-outside-toplevel
  finite = {"params": {"Dense_0": {"kernel": np.ones((2, 2), np.float32)}},
            "step": np.int32(3)}
  corrupt = {"params": {"Dense_0": {"kernel": np.array([[1.0, np.inf]])}}}
  assert errors.first_non_finite(finite) is None
  assert errors.first_non_finite(corrupt) == "params/Dense_0/kernel"
  assert errors.first_non_finite(None) is None  # A step without a batch.
  message = lambda *cause: str(errors.NonFiniteLossError(
      7, cause=errors.divergence_cause(*cause)))
  assert message("params/Dense_0/kernel", 6, "image") == (
      "loss became NaN or infinite at step 7 because the state restored from "
      "the checkpoint of step 6 already held NaN or infinite values (in "
      "params/Dense_0/kernel), not because of the learning rate; training "
      "stopped and the last good checkpoint was kept")
  assert message(None, 0, "image") == (
      "loss became NaN or infinite at step 7 because its batch held NaN or "
      "infinite values (in image): the data is at fault, not the learning "
      "rate; training stopped and the last good checkpoint was kept")
  config = {"epochs": 3, "optimizer": {"lr": 0.001, "weight_decay": 1e30,
                                       "lr_mult": ["head/.*=2"]}}
  assert message(None, 0, None, errors.update_options(config)) == (
      "loss became NaN or infinite at step 7 from a finite state and finite "
      "data, so the updates diverged: lower option optimizer.lr 0.001, option "
      "optimizer.weight_decay 1e+30, option optimizer.lr_mult head/.*=2, or "
      "clip the gradients (clip_norm); training stopped and the last good "
      "checkpoint was kept")


def _started(argv, until):
  """A real ``experiments/classify.py`` process, once ``until()`` holds (or 60 s passed)."""
  process = subprocess.Popen(
      [sys.executable, "experiments/classify.py", *argv], cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 60
  while not until() and time.time() < deadline and process.poll() is None:
    time.sleep(0.02)
  return process


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["importing", "preparing"])
def test_a_signal_before_training_is_one_sentence_and_exit_75(tmp_path, moment):
  """While the script imports, or while data and the model are prepared: nothing to save, and said so."""
  workdir = tmp_path / "run"
  started = time.time()
  process = _started(
      ["--model", "mlp", "--workdir", str(workdir), "--data-dir",
       str(tmp_path / "tfds")],
      until=(lambda: time.time() - started > 1.0) if moment == "importing"
      else (lambda: (tmp_path / "tfds").exists()))
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 75, err
  assert err.splitlines()[-1] == (
      "error: SIGTERM received before training started: stopped, nothing had "
      "been saved yet; run the same command again to start")
  assert not (workdir / "checkpoints").exists()


@pytest.mark.slow
def test_a_second_signal_stops_at_once_in_one_line(tmp_path):
  npz = write_npz(tmp_path / "data.npz", n_train=96, n_test=30)
  workdir = tmp_path / "run"
  process = _started(CLI + ["--dataset", str(npz), "--epochs", "100",
                            "--workdir", str(workdir)],
                     until=lambda: (workdir / "metrics.jsonl").exists()
                     and (workdir / "metrics.jsonl").read_text())
  process.send_signal(signal.SIGINT)
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 75, err
  last = err.strip().splitlines()[-1]
  assert last.startswith("error: ") and "Traceback" not in err, err[-2000:]
  assert last in (
      "error: a second SIGINT stopped training at once; the last saved "
      "checkpoint is intact: run the same command with --resume to continue "
      "from it", f"error: SIGINT received: stopped after step "
      f"{checkpoint_steps(workdir)[-1]} and saved a checkpoint in "
      f"{str(workdir)!r}; run the same command with --resume to continue "
      "exactly where it stopped")
