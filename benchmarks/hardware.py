"""What the benchmarks run on: device, versions, and the matmul peak.

Usage::

  info = machine_info()                     # device kind/count, versions
  peak = measure_peak("bfloat16", size=8192)  # {"flops_per_second": ..., ...}
  nominal = nominal_peak(info["device_kind"], "bfloat16")  # vendor FLOP/s or None

The measured peak is the best of ``repeats`` timings of one ``size x size``
by ``size x size`` matrix multiply in the benchmark dtype (``2 size^3``
FLOPs): the most this machine's compiler and libraries can get out of the
device for dense matrix work, against which a workload's achieved FLOP/s is
compared. The nominal (vendor) peak is shown alongside on known
accelerators; float32 on NVIDIA Ampere and later means TF32 tensor cores,
which is what JAX's default matmul precision uses there.
"""

import os
import platform
import re
import time
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np

# Dense (no sparsity) vendor peaks in TFLOP/s, matched by substring of the
# lower-cased ``device_kind``; the first match wins, so longer names first.
NOMINAL_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("h100 pcie", {"bfloat16": 756.0, "float32": 378.0}),
    ("h100", {"bfloat16": 989.0, "float32": 494.0}),   # SXM
    ("h200", {"bfloat16": 989.0, "float32": 494.0}),
    ("a100", {"bfloat16": 312.0, "float32": 156.0}),
    ("v100", {"bfloat16": 125.0, "float32": 15.7}),   # fp16 tensor cores
    ("tpu v4", {"bfloat16": 275.0}),
    ("tpu v5 lite", {"bfloat16": 197.0}),
    ("tpu v5e", {"bfloat16": 197.0}),
    ("tpu v5", {"bfloat16": 459.0}),                  # v5p
    ("tpu v6", {"bfloat16": 918.0}),                  # Trillium
)


def _version(package: str) -> str | None:
  try:
    return metadata.version(package)
  except metadata.PackageNotFoundError:
    return None


def _torch_threads() -> int | None:
  """PyTorch's intra-op threads (its CPU parallelism), if it is installed."""
  if _version("torch") is None:
    return None
  import torch  # pylint: disable=import-outside-toplevel
  return torch.get_num_threads()


def machine_info() -> dict:
  """Device kind and count, host, and the versions of every library timed."""
  devices = jax.devices()
  return {
      "platform": devices[0].platform,
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "cpu_count": os.cpu_count(),
      "processor": platform.processor() or platform.machine(),
      "python": platform.python_version(),
      "versions": {name: _version(name) for name in
                   ("jax", "jaxlib", "flax", "optax", "numpy", "torch")},
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "torch_threads": _torch_threads(),
  }


def machine_slug(info: dict) -> str:
  """A file-name-safe machine name, e.g. ``cpu-2cores`` or ``nvidia-h100-80gb-hbm3-x1``."""
  if info["platform"] == "cpu":
    return f"cpu-{info['cpu_count']}cores"
  kind = re.sub(r"[^a-z0-9]+", "-", info["device_kind"].lower()).strip("-")
  return f"{kind}-x{info['device_count']}"


def nominal_peak(device_kind: str, dtype: str) -> float | None:
  """The vendor's dense peak FLOP/s for ``dtype``, or None if unknown."""
  kind = device_kind.lower()
  for key, peaks in NOMINAL_TFLOPS:
    if key in kind:
      return peaks[dtype] * 1e12 if dtype in peaks else None
  return None


def default_peak_size(platform_name: str, quick: bool) -> int:
  """Big enough to be compute-bound, small enough to take well under a second."""
  if platform_name == "cpu":
    return 1024 if quick else 2048
  return 8192


def measure_peak(dtype: str, size: int, repeats: int = 10) -> dict:
  """FLOP/s of the fastest of ``repeats`` ``size^3`` matmuls in ``dtype``."""
  keys = jax.random.split(jax.random.PRNGKey(0))
  a, b = (jax.random.normal(k, (size, size), jnp.dtype(dtype)) for k in keys)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  flops = 2.0 * size ** 3
  return {"size": size, "dtype": dtype, "flops": flops,
          "best_seconds": min(times), "median_seconds": float(np.median(times)),
          "flops_per_second": flops / min(times)}
