"""dlcore.parallel: option checks here; many-device proofs in fresh interpreters.

This process has one CPU device, and JAX fixes the device count when its
backend starts, so the 8-device proofs (``multidevice/steps_on_8_devices.py``,
which sets ``--xla_force_host_platform_device_count=8`` itself) and the
two-process run (``multidevice/data_parallel_worker.py``, with
``jax.distributed`` and Gloo CPU collectives on 127.0.0.1) run as
subprocesses, and the rest of the suite keeps its single device.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from dlcore import distributed, parallel
from dlcore.config import parse_args
from dlcore.errors import ConfigError
from dlcore.supervised import ClassifyConfig

MULTIDEVICE = pathlib.Path(__file__).parent / "multidevice"
ROOT = pathlib.Path(__file__).parents[1]


def test_pad_batch_adds_masked_rows_only():
  batch = {"image": np.ones((5, 2), np.float32), "label": np.arange(5),
           "mask": np.array([1, 1, 1, 0, 0], np.float32)}
  padded = parallel.pad_batch(batch, 4)
  assert padded["image"].shape == (8, 2) and padded["label"].shape == (8,)
  np.testing.assert_array_equal(padded["mask"], [1, 1, 1, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(padded["label"][:5], np.arange(5))
  unmasked = parallel.pad_batch({"label": np.arange(8)}, 4)
  np.testing.assert_array_equal(unmasked["mask"], np.ones(8))


def test_bad_device_count_and_mechanism_are_config_errors():
  with pytest.raises(ConfigError, match="between 1 and the 1 available "
                     "devices, got 2"):
    parallel.data_mesh(2)
  with pytest.raises(ConfigError, match="choose one of jit, shard_map, pmap"):
    parallel.data_parallel(lambda s, b, *, axis_name: s, parallel.data_mesh(),
                           "vmap")


def test_one_device_needs_no_coordinator(monkeypatch):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  assert not distributed.initialize_distributed(parallel.ParallelConfig())
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  with pytest.raises(ConfigError, match="not option num_processes"):
    distributed.initialize_distributed(parallel.ParallelConfig())
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  with pytest.raises(ConfigError, match=r"option process_id must be in "
                     r"\[0, 2\), got 2"):
    distributed.initialize_distributed(parallel.ParallelConfig(process_id=2))


SLURM_TWO_TASKS = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]",
                   "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
                   "SLURM_LOCALID": "0"}


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    (SLURM_TWO_TASKS, "slurm"),
    ({**SLURM_TWO_TASKS, "SLURM_NTASKS": "1"}, None),  # A one-task job.
    ({"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1"}, "open-mpi"),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, "tpu-pod"),
    ({"TPU_WORKER_HOSTNAMES": "t0"}, None),
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, None),  # A pod, not a job.
    ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "JOB_COMPLETION_INDEX": "0"},
     "kubernetes"),
])
def test_cluster_jobs_are_detected_from_the_environment(env, expected):
  assert distributed.cluster_environment(env) == expected


def test_a_cluster_job_joins_through_auto_detection(monkeypatch):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda *args, **kwargs: calls.append((args, kwargs)))
  for name, value in SLURM_TWO_TASKS.items():
    monkeypatch.setenv(name, value)
  assert distributed.initialize_distributed(parallel.ParallelConfig())
  # No arguments: JAX reads SLURM's variables; our limit, then JAX's.
  assert calls == [((), {"initialization_timeout": 300 + 60})]
  assert distributed.initialize_distributed(parallel.ParallelConfig(
      coordinator_address="localhost:1", num_processes=2, process_id=1,
      coordinator_timeout=5))
  assert calls[-1] == (("localhost:1", 2, 1),
                       {"initialization_timeout": 5 + 60})  # Flags win.


def test_classify_flags_choose_devices_and_mechanism():
  config = parse_args(ClassifyConfig, "", ["--devices", "4", "--parallel",
                                           "pmap"])
  assert (config.devices, config.parallel) == (4, "pmap")
  assert parse_args(ClassifyConfig, "", []).parallel == "jit"
  with pytest.raises(SystemExit):
    parse_args(ClassifyConfig, "", ["--parallel", "vmap"])


def run_python(args, timeout, env=None):
  return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT,
                        env={**os.environ, **(env or {})}, timeout=timeout,
                        capture_output=True, text=True, check=False)


def assert_succeeded(result):
  assert result.returncode == 0, (
      f"exit {result.returncode}\n{result.stdout[-6000:]}\n"
      f"{result.stderr[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("part", ["not slow", "slow"],
                         ids=["steps", "whole-runs"])
def test_steps_on_8_simulated_devices_equal_one_device(tmp_path, part):
  """Runs the tests of ``multidevice/steps_on_8_devices.py`` (8 CPU devices).

  In two processes, the single steps and the whole runs, so that two
  test workers share them.
  """
  assert_succeeded(run_python(
      ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", part,
       "--basetemp", tmp_path / "pytest",
       MULTIDEVICE / "steps_on_8_devices.py"],
      timeout=540, env={"DLCORE_TEST_DATA_DIR": str(tmp_path / "tfds")}))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["data-parallel", "fsdp-across-processes"])
def test_two_processes_end_with_the_parameters_of_one(tmp_path, layout):
  """Two ``jax.distributed`` processes vs one process on one device.

  Data parallel: one CPU device per process. FSDP: four per process, the
  parameters split over all eight, across both processes.
  """
  port = free_port()
  worker = MULTIDEVICE / "data_parallel_worker.py"
  env = {"JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}"}  # Loopback only.
  flags = []
  if layout == "fsdp-across-processes":
    env["XLA_FLAGS"] = " ".join(filter(None, [
        os.environ.get("XLA_FLAGS"),
        "--xla_force_host_platform_device_count=4"]))
    flags = ["--mesh.data", "1", "--mesh.fsdp", "-1",
             "--sharding.fsdp-min-size", "16"]
  launch = lambda out, data_dir, *more, env=env: subprocess.Popen(
      [sys.executable, worker, "--out", out, "--data-dir", data_dir, *more],
      cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  (tmp_path / "two").mkdir()
  (tmp_path / "one").mkdir()
  processes = [  # Each prepares its own TFDS copy of digits.
      launch(tmp_path / "two", tmp_path / f"tfds{i}", "--coordinator-address",
             f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
             str(i), *flags) for i in (0, 1)]
  processes.append(launch(tmp_path / "one", tmp_path / "tfds", env={}))
  try:
    for p in processes:
      output, _ = p.communicate(timeout=300)
      assert p.returncode == 0, output[-6000:]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  first, second, alone = (np.load(tmp_path / path) for path in (
      "two/params_0.npz", "two/params_1.npz", "one/params_0.npz"))
  assert sorted(first) == sorted(second) == sorted(alone)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    np.testing.assert_allclose(first[name], alone[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  summaries = [json.loads((tmp_path / run / "run/summary.json").read_text())
               for run in ("two", "one")]
  assert [s["num_processes"] for s in summaries] == [2, 1]
  devices = 8 if flags else 2
  assert [s["num_devices"] for s in summaries] == [devices, 1]
  if flags:  # Split across both processes: an eighth of each large leaf.
    assert summaries[0]["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert (summaries[0]["param_bytes_per_device"]
            < summaries[1]["param_bytes_per_device"] / 4)
  assert abs(summaries[0]["test_accuracy"]
             - summaries[1]["test_accuracy"]) <= 0.005
