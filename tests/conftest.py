"""Shared fixtures: a TFDS data dir with ``digits`` prepared once per session.

Compiled programs are cached on disk for the session (JAX's persistent
compilation cache, also read by the subprocesses the tests start): many
tests compile the same steps, and a resumed run compiles what the
interrupted one did. XLA compiles them at LLVM -O0 (see below).
"""

import dataclasses
import importlib.util
import os
import pathlib
import struct
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="dlcore-test-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# The tests are compile-bound (small programs run a few times): with LLVM at
# -O0 the suite took 9:35 instead of 13:11 on 2 cores, the 8-device proofs
# 105 s instead of 273 s. Numerics differ from -O3 by float rounding only.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [
    os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))

import numpy as np
import pytest

from dlcore.data import datasets, load_dataset


EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load_script(name: str):
  """``experiments/NAME.py`` as a module (its ``main(argv)``), loaded afresh."""
  spec = importlib.util.spec_from_file_location(f"{name}_script",
                                                EXPERIMENTS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_script(name: str, argv: list[str]):
  """Runs ``experiments/NAME.py``'s main as ``python experiments/NAME.py`` would.

  Through ``cli.run``: bad input exits with status 2 and one sentence.
  """
  from dlcore import cli  # pylint: disable=import-outside-toplevel
  return cli.run(lambda: load_script(name).main(argv))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
  """A fresh TFDS data directory, so tests never read the user's cache."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session", autouse=True)
def tfds_never_reads_the_users_cache(data_dir):
  """Loading a dataset without a data_dir uses the session's fresh directory."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "DEFAULT_DATA_DIR", data_dir)
    yield


@pytest.fixture(scope="session")
def digits(data_dir):
  return load_dataset("digits", data_dir)


def write_npz(path: pathlib.Path, n_train=64, n_test=20, shape=(8, 8),
              num_classes=4, seed=0, **overrides) -> pathlib.Path:
  """A small npz dataset whose label is readable from the image."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for part, n in (("train", n_train), ("test", n_test)):
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, size=(n,) + shape).astype(np.uint8)
    for i, label in enumerate(labels):  # A bright row per class.
      images[i, label * shape[0] // num_classes] = 255
    arrays[f"x_{part}"], arrays[f"y_{part}"] = images, labels
  arrays.update(overrides)
  arrays = {k: v for k, v in arrays.items() if v is not None}
  np.savez(path, **arrays)
  return path


def small_classify_config(tmp_path: pathlib.Path, **changes):
  """A ``ClassifyConfig`` of an MLP on a 96/30-example npz: 6 steps per epoch, 3 epochs."""
  from dlcore.optim import OptimizerConfig  # pylint: disable=import-outside-toplevel
  from dlcore.supervised import ClassifyConfig  # pylint: disable=import-outside-toplevel
  npz = tmp_path / "small.npz"
  if not npz.exists():
    write_npz(npz, n_train=96, n_test=30)
  return dataclasses.replace(
      ClassifyConfig(dataset=str(npz), model="mlp", epochs=3, batch_size=16,
                     optimizer=OptimizerConfig(lr=3e-3, schedule="cosine"),
                     workdir=str(tmp_path / "run")), **changes)


LONGEST_FIRST = ("test_steps_on_8_simulated_devices_equal_one_device",
                 "test_two_processes_end_with_the_parameters_of_one",
                 "test_script_end_to_end_and_exact_resume")


def pytest_collection_modifyitems(items):
  """The longest tests start first, so that parallel workers (-n 2) end together."""
  items.sort(key=lambda item: item.originalname not in LONGEST_FIRST)


def tensorboard_values(directory: pathlib.Path,
                       kind: str) -> dict[str, dict[int, object]]:
  """``{tag: {step: value}}`` of one ``kind`` ("simple_value", "image") in TFRecord event files.

  Read without TensorFlow: a record is its length (uint64), the length's
  masked CRC (uint32), an ``Event`` proto and the proto's masked CRC.
  """
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  values: dict[str, dict[int, object]] = {}
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        if value.HasField(kind):
          values.setdefault(value.tag, {})[event.step] = getattr(value, kind)
  return values
