"""Hostile but fair input, met the way a user meets it: one sentence, exit 2, nothing written.

Each case runs an experiment script's ``main`` under ``cli.run`` (as its
``__main__`` does) and checks the exit status, that stderr is one line
``error: ...`` naming the problem, and that the workdir was not created.
"""

import dataclasses
import math
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import time
import typing

import numpy as np
import pytest

from conftest import EXPERIMENTS, load_script
from dlcore import cli, errors
from dlcore.adversarial.fcd import judge_directory
from dlcore.data import datasets
from dlcore.config import Interval, check_ranges
from dlcore.errors import ConfigError

# Cadences are checked by ``loop.check_cadences`` (0 or a positive multiple).
CADENCES = {"log_every", "eval_every", "sample_every", "checkpoint_every"}


def refused(capsys, name: str, argv: list[str], workdir: pathlib.Path) -> str:
  """The one sentence ``experiments/<name>.py argv`` exits 2 with; nothing written."""
  module = load_script(name)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(lambda: module.main([*argv, "--workdir", str(workdir)]))
  err = capsys.readouterr().err
  assert exit_info.value.code == 2, err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert "Traceback" not in err
  assert not workdir.exists()
  return err[len("error: "):-1]


def numeric_options(config, prefix=""):
  """(dotted name, field) of every int or float option of ``config``, sections included."""
  hints = typing.get_type_hints(type(config))
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if dataclasses.is_dataclass(value):
      yield from numeric_options(value, f"{prefix}{f.name}.")
    elif typing.get_origin(hints[f.name]) is tuple:
      continue  # A list of numbers (segment's class_weights), checked by its run.
    elif {int, float} & set(typing.get_args(hints[f.name]) or
                            [hints[f.name]]):
      yield prefix + f.name, f


def replace(config, dotted: str, value):
  """``config`` with the option ``dotted`` (``optimizer.lr``) set to ``value``."""
  name, _, rest = dotted.partition(".")
  if rest:
    value = replace(getattr(config, name), rest, value)
  return dataclasses.replace(config, **{name: value})


def outside(interval: Interval) -> list[float]:
  """Values just outside ``interval``."""
  values = []
  if math.isfinite(interval.low):
    values.append(interval.low if not interval.low_closed else interval.low - 1)
  if math.isfinite(interval.high):
    values.append(interval.high if not interval.high_closed
                  else interval.high + 1)
  return values


CONFIGS = {name: getattr(load_script(name), attribute)
           for name, attribute in (("classify", "ClassifyConfig"),
                                   ("finetune", "FinetuneConfig"),
                                   ("gan", "GanConfig"), ("vae", "VaeConfig"),
                                   ("dqn", "DqnConfig"), ("ppo", "PpoConfig"),
                                   ("segment", "SegmentConfig"),
                                   ("cyclegan", "CycleGanConfig"))}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_numeric_option_refuses_values_outside_its_stated_range(name):
  config = CONFIGS[name]()
  check_ranges(config)  # The defaults are valid.
  options = list(numeric_options(config))
  for option, f in options:
    if f.name in CADENCES and f.metadata.get("valid") is None:
      continue  # loop.check_cadences: a test below.
    assert f.metadata.get("valid") is not None, f"{name}: {option} unchecked"
    interval = Interval.parse(f.metadata["valid"])
    for value in outside(interval) + [float("nan")]:
      changed = replace(config, option, value)
      with pytest.raises(ConfigError) as error:
        check_ranges(changed)
      assert str(error.value) == (f"option {option} must be "
                                  f"{interval.describe()}, got {value}")


@pytest.mark.parametrize("name, argv, message", [
    ("classify", ["--optimizer.lr", "0"],
     "--optimizer.lr must be positive, got 0.0"),
    ("classify", ["--eval-every", "-5"], "--eval-every must be 0 (at the end "
     "only) or a positive multiple of 1, got -5"),
    ("vae", ["--log-every", "-1"], "--log-every must be 0 (at the end only) "
     "or a positive multiple of 1, got -1"),
    ("gan", ["--steps", "10", "--g-optimizer.warmup-steps", "10"],
     "--g-optimizer.warmup-steps must be below the number of updates, 10 (10 "
     "steps // --g-optimizer.accumulate 1), got 10"),
    ("classify", ["--optimizer.weight-decay", "-0.1"],
     "--optimizer.weight-decay must be at least 0, got -0.1"),
    ("classify", ["--optimizer.clip-norm", "inf"],
     "--optimizer.clip-norm must be at least 0 and finite, got inf"),
    ("gan", ["--gp-weight", "-1"], "--gp-weight must be at least 0, got -1.0"),
    ("gan", ["--d-optimizer.b1", "1"],
     "--d-optimizer.b1 must be in [0, 1), got 1.0"),
    ("vae", ["--seed", "4294967296"],
     "--seed must be in [0, 4294967295], got 4294967296"),
    ("dqn", ["--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    ("cyclegan", ["--pool-size", "-1"], "--pool-size must be at least 0, got -1"),
    ("dqn", ["--total-steps", "5000", "--log-every", "1000"],
     "--total-steps 5000 (a run of 5000 environment steps in whole chunks) "
     "ends before the first gradient update at environment step 10000 "
     "(--learning-starts 10000), so the agent would learn nothing; raise "
     "--total-steps or lower --learning-starts"),
])
def test_bad_options_named_with_their_range(name, argv, message, capsys,
                                             tmp_path):
  assert refused(capsys, name, argv, tmp_path / "run") == message


def _npz(path: pathlib.Path, **overrides) -> pathlib.Path:
  """A valid 8x8 four-class npz at ``path`` with ``overrides`` (None drops an array)."""
  rng = np.random.default_rng(0)
  arrays = {"x_train": rng.random((40, 8, 8), np.float32),
            "y_train": np.arange(40) % 4,
            "x_test": rng.random((12, 8, 8), np.float32),
            "y_test": np.arange(12) % 4, **overrides}
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return path


def _not_npz(kind: str, path: pathlib.Path) -> pathlib.Path:
  """A file named ``*.npz`` that is not a readable npz: ``kind`` says what it is."""
  if kind == "text":
    path.write_text("x_train,y_train\n1,2\n")
  elif kind == "npy":
    with open(path, "wb") as f:
      np.save(f, np.zeros((4, 8, 8)))
  elif kind == "pickle":
    path.write_bytes(pickle.dumps({"x_train": np.zeros(3)}))
  elif kind == "empty":
    path.write_bytes(b"")
  else:  # A valid npz cut short (truncated) or with its first array overwritten.
    whole = _npz(path).read_bytes()
    if kind == "truncated":
      path.write_bytes(whole[:len(whole) // 2])
    else:
      path.write_bytes(whole[:200] + bytes(300) + whole[500:])
  return path


@pytest.mark.parametrize("kind, message", [
    ("text", "is not an npz file (not a zip archive, or a truncated one)"),
    ("npy", "is not an npz file (a single .npy array)"),
    ("pickle", "is not an npz file (not a zip archive, or a truncated one)"),
    ("empty", "is not an npz file (empty)"),
    ("truncated", "is not an npz file (not a zip archive, or a truncated one)"),
    ("overwritten", "is damaged, x_train cannot be read"),
])
def test_file_named_npz_that_is_not_one(kind, message, capsys, tmp_path):
  path = _not_npz(kind, tmp_path / "data.npz")
  sentence = refused(capsys, "classify", ["--dataset", str(path)],
                     tmp_path / "run")
  assert sentence.startswith(f"dataset file {str(path)!r} {message}"), sentence


NAN_IMAGES = np.random.default_rng(1).random((12, 8, 8))
NAN_IMAGES[5, 2, 3], NAN_IMAGES[9, 0, 0] = np.nan, np.inf
STRAY = np.arange(40) % 4
STRAY[17] = 100_000


@pytest.mark.parametrize("overrides, message", [
    ({"x_train": np.array([np.zeros((8, 8)), "a"], dtype=object)},
     "data.npz: x_train holds Python objects (dtype object); an npz dataset "
     "needs numeric arrays"),
    ({"y_train": np.array(["cat", "dog"] * 20)},
     "data.npz: y_train must be a 1-D array of integer class labels, got "
     "strings of shape [40]"),
    ({"x_train": np.zeros((0, 8, 8)), "y_train": np.zeros(0, int)},
     "data.npz: x_train holds no images; an npz dataset needs at least one "
     "example in each of train and test"),
    ({"x_test": np.zeros((0, 8, 8)), "y_test": np.zeros(0, int)},
     "data.npz: x_test holds no images; an npz dataset needs at least one "
     "example in each of train and test"),
    ({"x_train": np.float32(1.0)}, "data.npz: x_train is a single value, not "
     "an array with one entry per example"),
    ({"x_test": NAN_IMAGES}, "dataset 'data' has NaN or infinite pixels in 2 "
     "test images, the first at index 5; images must be finite"),
    ({"y_train": STRAY}, "dataset 'data' has labels up to 100000, so 100001 "
     "classes, but only 5 of them occur; labels must be class indices 0 to "
     "(number of classes - 1)"),
    ({"x_train": np.zeros((40, 3, 3)), "x_test": np.zeros((12, 3, 3))},
     "model cnn cannot take images of 3x3 pixels; it needs at least 4x4 "
     "pixels; choose larger images or another --model, such as mlp"),
])
def test_npz_arrays_that_are_not_what_they_seem(overrides, message, capsys,
                                                tmp_path):
  path = _npz(tmp_path / "data.npz", **overrides)
  assert refused(capsys, "classify", ["--dataset", str(path)],
                 tmp_path / "run") == message


@pytest.mark.parametrize("model, side", [("lenet5", 12), ("cnn", 4)])
def test_image_smaller_than_the_model_takes_names_the_minimum(
    model, side, capsys, tmp_path):
  small = side - 1
  path = _npz(tmp_path / "data.npz", x_train=np.zeros((40, small, side + 5)),
              x_test=np.zeros((12, small, side + 5)))
  sentence = refused(capsys, "classify", ["--dataset", str(path), "--model",
                                          model], tmp_path / "run")
  assert sentence.startswith(f"model {model} cannot take images of "
                             f"{small}x{side + 5} pixels; it needs at least")


def test_gan_checks_its_classifier_and_options_before_training_it(capsys,
                                                                  tmp_path):
  path = _npz(tmp_path / "data.npz", x_train=np.zeros((40, 3, 3)),
              x_test=np.zeros((12, 3, 3)))
  assert refused(capsys, "gan", ["--dataset", str(path), "--arch", "mlp"],
                 tmp_path / "run") == (
      "the FCD classifier (cnn) cannot take images of 3x3 pixels; it needs "
      "at least 4x4 pixels")
  path = _npz(tmp_path / "data.npz")
  sentence = refused(capsys, "gan", ["--dataset", str(path), "--arch", "mlp",
                                     "--batch-size", "41"], tmp_path / "run")
  assert sentence.startswith("batch size 41 must be between 1 and the 40")


@pytest.mark.parametrize("name, message", [
    ("", "--dataset is empty; give digits, a TFDS name such as mnist, or a "
     "path to an .npz file"),
    ("mnist:x.y", "TFDS cannot build dataset 'mnist:x.y' (Parsing builder "
     "name string mnist:x.y failed.); write it as NAME, NAME:VERSION or "
     "NAME/CONFIG:VERSION, such as mnist or mnist:3.0.1"),
])
def test_dataset_names_that_are_not_names(name, message, capsys, tmp_path):
  assert refused(capsys, "vae", ["--dataset", name, "--data-dir",
                                 str(tmp_path / "tfds")],
                 tmp_path / "run") == message
  assert not (tmp_path / "tfds").exists()


def test_tfds_download_without_network_fails_at_once_and_leaves_no_trace(
    capsys, tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, "DOWNLOAD_HOST", ("unreachable.invalid", 443))
  kept = tmp_path / "tfds" / "kept.txt"  # A data dir the user already has.
  kept.parent.mkdir()
  kept.write_text("mine")
  for data_dir in (tmp_path / "new", kept.parent):
    tic = time.perf_counter()
    sentence = refused(capsys, "classify", ["--dataset", "mnist", "--data-dir",
                                            str(data_dir)], tmp_path / "run")
    assert time.perf_counter() - tic < 15
    assert sentence.startswith(
        f"TFDS dataset 'mnist' is not prepared in {str(data_dir)!r} and "
        "cannot be downloaded: unreachable.invalid:443 is unreachable (")
  assert not (tmp_path / "new").exists()
  assert list((tmp_path / "tfds").rglob("*")) == [kept]


def test_divergence_blames_the_learning_rate_only_when_state_and_data_were_finite():
  finite = {"params": {"Dense_0": {"kernel": np.ones((2, 2), np.float32)}},
            "step": np.int32(3)}
  corrupt = {"params": {"Dense_0": {"kernel": np.array([[1.0, np.inf]])}},
             "step": np.int32(3)}
  assert errors.first_non_finite(finite) is None
  assert errors.first_non_finite(corrupt) == "params/Dense_0/kernel"
  assert errors.first_non_finite({"image": np.array([np.nan]),
                                  "label": np.array([1])}) == "image"
  assert errors.first_non_finite(None) is None  # A step without a batch.
  message = lambda state_leaf, start, batch_leaf: str(errors.NonFiniteLossError(
      7, cause=errors.divergence_cause(state_leaf, start, batch_leaf)))
  assert message("params/Dense_0/kernel", 6, "image") == (
      "loss became NaN or infinite at step 7 because the state restored from "
      "the checkpoint of step 6 already held NaN or infinite values (in "
      "params/Dense_0/kernel), not because of the learning rate; training "
      "stopped and the last good checkpoint was kept")
  assert message(None, 0, "image") == (
      "loss became NaN or infinite at step 7 because its batch held NaN or "
      "infinite values (in image): the data is at fault, not the learning "
      "rate; training stopped and the last good checkpoint was kept")
  assert "learning rate" not in str(errors.NonFiniteLossError(7))
  assert message(None, 0, None) == (
      "loss became NaN or infinite at step 7 from a finite state and finite "
      "data, so training diverged: a lower learning rate or gradient clipping "
      "(option optimizer.clip_norm) may help; training stopped and the last "
      "good checkpoint was kept")


def test_unresolvable_coordinator_is_refused_at_once(capsys, tmp_path):
  sentence = refused(capsys, "classify", [
      "--coordinator-address", "no-such-host.invalid:1234", "--num-processes",
      "2", "--process-id", "1"], tmp_path / "run")
  assert sentence.startswith("--coordinator-address 'no-such-host.invalid:"
                             "1234' does not name a reachable host:port (")


@pytest.mark.slow
def test_unreachable_coordinator_times_out_with_one_sentence(tmp_path):
  with socket.socket() as probe:  # A port nobody listens on.
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  # What every script does first, without importing the models and TFDS.
  first_lines = ("import sys; from dlcore import parallel; "
                 "from dlcore.config import parse_args; "
                 "parallel.initialize_distributed(parse_args("
                 "parallel.ParallelConfig, 'x', sys.argv[1:]))")
  tic = time.perf_counter()
  result = subprocess.run(
      [sys.executable, "-c", first_lines, "--coordinator-address",
       f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1",
       "--coordinator-timeout", "2"], cwd=tmp_path, env={
           **os.environ, "PYTHONPATH": str(EXPERIMENTS.parent)},
      capture_output=True, text=True, check=False, timeout=120)
  assert result.returncode == 2, result.stderr
  assert result.stderr.splitlines() == [
      f"error: the coordinator at 127.0.0.1:{port} did not gather every "
      "process within 2 s (--coordinator-timeout); start all processes with "
      "the same --coordinator-address and --num-processes, or wait longer"]
  assert time.perf_counter() - tic < 60
  assert not list(tmp_path.iterdir())  # Nothing written.


def test_fcd_classifier_cache_is_keyed_to_the_dataset_arrays(tmp_path):
  def data(seed, name="data"):
    return datasets.load_dataset(str(_npz(tmp_path / f"{name}.npz",
                                          x_train=np.random.default_rng(seed)
                                          .random((40, 8, 8)))))
  cache = tmp_path / "classifiers"
  same_shape = [judge_directory(data(seed), cache) for seed in (0, 1)]
  assert same_shape[0] != same_shape[1]  # Same shape, other pixels.
  assert judge_directory(data(0), cache) == same_shape[0]  # Same arrays.
  assert same_shape[0].parent == cache
  assert same_shape[0].name.startswith("data-")
