"""Exact resume, once per kind of batch stream: a stopped run resumed equals the run that never stopped.

A stop (what SIGTERM does, injected at a chosen step so the test replays)
saves a checkpoint between records; the resumed run must end with the same
parameters, optimizer state, buffers and pools, bit for bit, and the same
``metrics.jsonl`` (records on the same steps, averaging the same steps;
only their seconds differ). ``tests/test_loop.py`` sends a real SIGTERM to
a real process.
"""

import dataclasses
import json

import jax
import numpy as np
import pytest

from conftest import small_classify_config, write_npz
from dlcore import experiment, loop
from dlcore.adversarial import GanConfig
from dlcore.adversarial import train_and_evaluate as train_gan
from dlcore.checkpoint import Checkpointer
from dlcore.cyclegan import CycleGanConfig
from dlcore.cyclegan import train_and_evaluate as train_cyclegan
from dlcore.cyclegan.train import UnpairedStream
from dlcore.data import Split, canvases
from dlcore.data.digits import NUM_TRAIN, digits_arrays
from dlcore.errors import ConfigError, Preempted
from dlcore.optim import OptimizerConfig
from dlcore.rl.dqn import DqnConfig
from dlcore.rl.dqn import train_and_evaluate as train_dqn
from dlcore.rl.ppo import PpoConfig
from dlcore.rl.ppo import train_and_evaluate as train_ppo
from dlcore.segmentation import AugmentConfig, SegmentConfig
from dlcore.segmentation import train_and_evaluate as train_segmenter
from dlcore.supervised import train_and_evaluate as train_classifier


def _split(n: int, seed: int) -> Split:
  rng = np.random.default_rng(seed)
  return Split(rng.random((n, 4, 4, 1), np.float32), np.arange(n) % 3)


def test_every_stream_gives_step_s_the_same_batch_whatever_it_starts_from():
  streams = [
      experiment.DatasetStream(_split(10, 0), _split(5, 1), batch_size=4,
                               eval_batch_size=4, seed=3,
                               prepare=lambda b: {**b, "image": b["image"] * 2}),
      UnpairedStream(_split(10, 0), _split(7, 1), batch_size=3, seed=3)]
  for stream in streams:
    run = stream.batches(0)
    first_eight = [next(run) for _ in range(8)]  # Two epochs and more.
    for start in (1, 2, 5, 7):
      jax.tree.map(np.testing.assert_array_equal, next(stream.batches(start)),
                   first_eight[start])
  dataset = streams[0]
  tests = list(dataset.test_batches())
  assert [int(b["mask"].sum()) for b in tests] == [4, 1]  # Padded, masked.
  np.testing.assert_array_equal(tests[1]["image"][0],
                                dataset.test.images[4] * 2)
  assert next(experiment.NoData().batches(17)) is None


def _canvases_npz(tmp_path):
  images, labels, ids = digits_arrays()
  digits = images[..., 0] / 255.0
  rng = np.random.default_rng(0)
  (train, train_masks, _), (test, test_masks, _) = (
      canvases.make_canvases(digits[:NUM_TRAIN], labels[:NUM_TRAIN],
                             ids[:NUM_TRAIN], 32, rng),
      canvases.make_canvases(digits[NUM_TRAIN:], labels[NUM_TRAIN:],
                             ids[NUM_TRAIN:], 12, rng))
  path = tmp_path / "canvases.npz"
  np.savez(path, x_train=train, y_train=train_masks[..., 0], x_test=test,
           y_test=test_masks[..., 0])
  return str(path)


def _unlabelled_npz(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "blobs.npz"
  np.savez(path, x_train=rng.integers(0, 256, (64, 8, 8), np.uint8),
           x_test=rng.integers(0, 256, (16, 8, 8), np.uint8))
  return str(path)


def _runs(tmp_path):
  """``{kind: (train, config, stop step)}``, each config a tiny run with records between checkpoints."""
  domains = [write_npz(tmp_path / f"{d}.npz", n_train=32, n_test=8,
                       shape=(16, 16, 3), seed=i) for i, d in enumerate("ab")]
  return {
      # DatasetStream: 18 steps, a record and a checkpoint per epoch (6).
      "classify": (train_classifier, small_classify_config(
          tmp_path, shift=1), 8),
      # DatasetStream with a prepare map, two networks.
      "gan": (train_gan, GanConfig(
          dataset=_unlabelled_npz(tmp_path), arch="mlp", steps=12,
          batch_size=16, log_every=4, checkpoint_every=6, sample_every=0), 9),
      # DatasetStream of images and masks, augmented together.
      "segment": (train_segmenter, SegmentConfig(
          dataset=_canvases_npz(tmp_path), width=4, depth=1, epochs=2,
          batch_size=8, eval_batch_size=8, checkpoint_every=3,
          augment=AugmentConfig(max_shift=2),
          optimizer=OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                    warmup_steps=1)), 5),
      # UnpairedStream: four networks and two image pools.
      "cyclegan": (train_cyclegan, CycleGanConfig(
          domain_a=str(domains[0]), domain_b=str(domains[1]), g_width=4,
          g_blocks=1, g_downsamplings=1, d_width=4, d_layers=1, pool_size=3,
          batch_size=4, steps=6, log_every=3, eval_every=6, sample_every=0,
          checkpoint_every=2, classifier_epochs=1,
          classifier_dir=str(tmp_path / "judges")), 4),
      # NoData: seeds of compiled chunks, a replay buffer.
      "dqn": (train_dqn, DqnConfig(
          total_steps=1000, chunk_steps=200, num_envs=4, buffer_size=400,
          learning_starts=200, batch_size=16, train_every=4,
          target_update_every=40, log_every=400, checkpoint_every=200,
          eval_episodes=2, seeds=2), 600),
      # NoData with a continuous policy.
      "ppo": (train_ppo, PpoConfig(
          env="Pendulum-v1", total_steps=512, chunk_steps=128, num_envs=2,
          num_steps=64, num_minibatches=2, update_epochs=2, log_every=256,
          checkpoint_every=128, eval_episodes=2, seeds=2, hidden_size=16),
       128),
  }


def _stop_at(monkeypatch, step: int) -> None:
  """The loop sees a SIGTERM right after ``step``."""
  monkeypatch.setattr(loop._Interruptions, "received",  # pylint: disable=protected-access
                      lambda self, done: "SIGTERM" if done == step else None)


def _final(workdir):
  checkpointer = Checkpointer(workdir / "checkpoints")
  state, meta = checkpointer.restore_latest()
  checkpointer.close()
  return meta["step"], state


def _records(workdir):
  drop = ("seconds", "steps_per_sec")
  return [{k: v for k, v in json.loads(line).items() if k not in drop}
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["classify", "gan", "segment", "cyclegan",
                                  "dqn", "ppo"])
def test_a_stopped_run_resumed_is_the_run_that_never_stopped(
    kind, tmp_path, monkeypatch):
  train, config, stop = _runs(tmp_path)[kind]
  straight = dataclasses.replace(config, workdir=str(tmp_path / "straight"))
  stopped = dataclasses.replace(config, workdir=str(tmp_path / "stopped"))
  summary = train(straight)
  with monkeypatch.context() as patch:
    _stop_at(patch, stop)
    with pytest.raises(Preempted, match=f"stopped after step {stop} and "
                       "saved a checkpoint"):
      train(stopped)
  assert _final(tmp_path / "stopped")[0] == stop
  resumed = train(dataclasses.replace(stopped, resume=True))
  (step_a, state_a), (step_b, state_b) = (_final(tmp_path / w)
                                          for w in ("straight", "stopped"))
  assert step_a == step_b
  jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
  assert _records(tmp_path / "straight") == _records(tmp_path / "stopped")
  timing = ("train_seconds", "compile_seconds", "env_steps_per_sec",
            "env_steps_per_sec_per_seed", "config")
  assert ({k: v for k, v in summary.items() if k not in timing}
          == {k: v for k, v in resumed.items() if k not in timing})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dqn", "ppo"])
def test_the_log_cadence_is_not_the_chunk_a_resume_may_change_it(kind,
                                                                  tmp_path):
  """A resume with another log_every: the same run, records on the new grid; the chunk stays."""
  train, config, _ = _runs(tmp_path)[kind]
  chunk = config.chunk_steps
  straight = train(dataclasses.replace(config, workdir=str(tmp_path / "a")))
  half = dataclasses.replace(config, workdir=str(tmp_path / "b"),
                             total_steps=config.total_steps)
  with pytest.MonkeyPatch.context() as patch:
    _stop_at(patch, 2 * chunk)
    with pytest.raises(Preempted):
      train(half)
  resumed = train(dataclasses.replace(half, resume=True, log_every=chunk))
  assert resumed["eval_return_per_seed"] == straight["eval_return_per_seed"]
  jax.tree.map(np.testing.assert_array_equal, _final(tmp_path / "a")[1],
               _final(tmp_path / "b")[1])
  steps = [r["step"] for r in _records(tmp_path / "b")]
  assert steps[-1] == straight["env_steps"] and chunk in np.diff(steps)
  with pytest.raises(ConfigError, match="option chunk_steps differs"):
    train(dataclasses.replace(half, resume=True, chunk_steps=2 * chunk))


def test_a_fresh_run_refuses_a_workdir_with_any_file_of_another_run(tmp_path):
  config = small_classify_config(tmp_path, epochs=1)
  for name, make in (("model.txt", lambda p: p.write_text("parameter ...")),
                     ("curves.png", lambda p: p.write_bytes(b"\x89PNG")),
                     ("tensorboard", lambda p: (p.mkdir(), (p / "e").touch()))):
    workdir = tmp_path / name
    workdir.mkdir()
    make(workdir / name)
    with pytest.raises(ConfigError, match=f"already holds a run .*{name}"):
      train_classifier(dataclasses.replace(config, workdir=str(workdir)))
