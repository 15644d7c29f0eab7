"""dlcore.sharding on one device: mesh sizes, the fsdp tactic and logical rules by hand.

The 8-device proofs that every layout computes what one device computes
are in ``multidevice/steps_on_8_devices.py``.
"""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from dlcore import sharding
from dlcore.errors import ConfigError
from dlcore.models.attention import MultiHeadAttention
from dlcore.sharding import MeshConfig, ShardingConfig


def test_one_axis_fills_the_devices_the_others_leave():
  assert sharding.mesh_shape(MeshConfig(), 8) == (8, 1, 1)
  assert sharding.mesh_shape(MeshConfig(data=-1, fsdp=4), 8) == (2, 4, 1)
  assert sharding.mesh_shape(MeshConfig(data=2, fsdp=-1, tensor=2), 16) == (
      2, 4, 2)
  with pytest.raises(ConfigError, match="do not divide the 6 devices"):
    sharding.mesh_shape(MeshConfig(data=-1, fsdp=4), 6)


MESH = AbstractMesh((1, 4, 2), sharding.AXES)


def specs_of(tree, config=ShardingConfig(fsdp_min_size=100)):
  abstract = jax.tree.map(lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32),
                          tree, is_leaf=lambda x: isinstance(x, tuple))
  return sharding.state_specs(abstract, MESH, config)


def test_the_fsdp_tactic_splits_the_largest_dimension_it_divides():
  specs = specs_of({"params": {"a": (6, 64), "b": (64, 6), "c": (10, 9),
                               "tiny": (8, 8), "bias": (512,)},
                    "opt_state": {"mu": (6, 64)}, "pool": (64, 64)})
  assert specs["params"] == {"a": P(None, "fsdp"), "b": P("fsdp", None),
                             "c": P(), "tiny": P(), "bias": P("fsdp")}
  assert specs["opt_state"]["mu"] == P(None, "fsdp")  # As its parameter.
  assert specs["pool"] == P()  # Not the model's state: replicated.


def test_logical_names_map_through_the_rules():
  layer = MultiHeadAttention(num_heads=4, head_dim=8)
  abstract = jax.eval_shape(layer.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 3, 16)))
  specs = sharding.state_specs(abstract, MESH, ShardingConfig())
  assert specs["params"]["query"]["kernel"] == P("fsdp", "tensor", None)
  assert specs["params"]["out"]["kernel"] == P("tensor", None, "fsdp")
  with pytest.raises(ConfigError, match=r"cannot be split over mesh axis "
                     r"'tensor' of 2 devices: 3 does not divide"):
    sharding.state_specs(jax.eval_shape(
        MultiHeadAttention(num_heads=3, head_dim=8).init,
        jax.random.PRNGKey(0), jnp.zeros((1, 3, 16))), MESH, ShardingConfig())


def test_placement_counts_the_bytes_each_device_holds():
  state = {"params": {"w": jnp.ones((4, 8))},
           "opt_state": {"mu": jnp.zeros((4, 8)), "count": jnp.zeros(())}}
  assert sharding.placement(state, None) == {
      "mesh": None, "param_bytes_per_device": 128,
      "optimizer_bytes_per_device": 132}
  assert sharding.spec_text(state["params"]["w"]) == "P()"
  assert sharding.spec_text(1.0) == "-"
