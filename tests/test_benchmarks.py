"""The benchmark harness runs end to end on a tiny workload and writes well-formed output.

No timing is asserted: only that every number is there, positive and
consistent with the others, and that the files parse.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import __main__ as bench
from benchmarks import hardware
from benchmarks.workloads import in_dtype
from dlcore.errors import ConfigError
from dlcore.models import MLP

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_run_writes_json_markdown_and_plots(tmp_path):
  stem = tmp_path / "run"
  bench.main(["--workloads", "mlp", "--batch-size", "4", "--quick",
              "--peak-size", "128", "--no-torch",
              "--sweep-batch-sizes", "2,8", "--output", str(stem)])
  results = json.loads(stem.with_suffix(".json").read_text())
  assert results["machine"]["versions"]["jax"] == jax.__version__
  assert results["machine"]["device_count"] == jax.device_count()
  assert results["peak"]["measured_flops_per_s"] > 0
  (record,) = results["workloads"]
  assert (record["workload"], record["batch_size"]) == ("mlp", 4)
  assert set(record["sides"]) == {"dlcore", "baseline"}
  for side in record["sides"].values():
    assert side["timed_steps"] >= 20
    assert 0 < side["min_s"] <= side["median_s"] <= side["max_s"]
    assert side["compile_s"] > 0
    assert side["items_per_s"] == pytest.approx(4 / side["median_s"])
  # Forward + backward of the MLP's three matmuls: 3 * 2 * B * sum(d_in*d_out).
  matmul_flops = 6 * 4 * (784 * 256 + 256 * 128 + 128 * 10)
  assert matmul_flops <= record["model_flops_per_step"] < 1.5 * matmul_flops
  assert record["ratios"]["dlcore_over_baseline"] == pytest.approx(
      record["sides"]["dlcore"]["median_s"]
      / record["sides"]["baseline"]["median_s"])
  (sweep,) = results["sweeps"]
  assert [p["batch_size"] for p in sweep["points"]] == [2, 8]
  markdown = stem.with_suffix(".md").read_text()
  assert "| mlp | 4 |" in markdown and "Batch-size sweep, mlp" in markdown
  for png in (stem.with_suffix(".png"), tmp_path / "run-sweep.png"):
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_bad_options_are_one_sentence_errors():
  with pytest.raises(ConfigError, match="unknown workload nope"):
    bench.run(bench.BenchConfig(workloads="mlp,nope"))
  with pytest.raises(ConfigError, match="at least 20"):
    bench.run(bench.BenchConfig(repeats=5))


def test_bfloat16_computes_in_bfloat16_from_float32_parameters():
  model = in_dtype(MLP(hidden_sizes=(8,), num_outputs=3), "bfloat16")
  x = jnp.ones((2, 5))
  variables = model.init(jax.random.PRNGKey(0), x)
  assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
  out = model.apply(variables, x)
  assert out.dtype == jnp.float32
  reference = MLP(hidden_sizes=(8,), num_outputs=3).apply(
      variables, x)
  np.testing.assert_allclose(out, reference, rtol=0.05, atol=0.05)
  assert not np.array_equal(out, reference)  # Rounded to bfloat16 inside.


def test_nominal_peak_table():
  assert hardware.nominal_peak("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert hardware.nominal_peak("NVIDIA H100 PCIe", "bfloat16") == 756e12
  assert hardware.nominal_peak("cpu", "float32") is None
