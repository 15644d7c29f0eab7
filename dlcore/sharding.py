"""Where a run's arrays live: the device mesh, and a sharding for every leaf of a state.

Usage::

  mesh = make_mesh(MeshConfig(data=-1, fsdp=4))     # axes ("data", "fsdp", "tensor")
  abstract = jax.eval_shape(init, key, batch)       # nothing is materialised
  shardings = state_shardings(abstract, mesh, ShardingConfig())
  state = jax.jit(init, out_shardings=shardings)(key, batch)   # created sharded
  print(bytes_per_device(state))                    # measured from the shards

The mesh has three named axes with **Auto** axis types (Flax linen's
logical partitioning fails on JAX 0.10's default Explicit ones): ``data``
(the batch is split, parameters are copied), ``fsdp`` (the batch is split
and so are the parameters: fully sharded data parallelism, ZeRO-3) and
``tensor`` (each layer's matrices are split, the batch is copied). Their
sizes come from the config; one of them may be -1, the devices the others
leave. Batches are split along their leading axis over ``("data",
"fsdp")``. Devices are laid out process by process, so the outer axis
(``data``) spans processes first.

A state leaf's partition spec is the first of these that applies:

1. its parameter was annotated by the model (``nn.with_logical_partitioning``:
   ``("embed", "mlp")``): the logical axis rules map each name to a mesh
   axis (``embed=fsdp``, ``mlp=tensor``, ``kv=`` for none), Flax lm1b's
   recipe;
2. otherwise, for the model's own state (a leaf under ``params``,
   ``target_params`` or ``opt_state``), big_vision's ``fsdp`` tactic: a
   leaf of at least ``fsdp_min_size`` elements is split over ``fsdp``
   along its largest dimension that the axis divides; smaller leaves are
   replicated;
3. anything else (an image pool, a replay buffer, environment states,
   counters) is replicated.

Optimizer moments, EMAs and target networks are trees shaped like the
parameters: an annotated parameter's annotation is carried into them by
optax (Flax's boxes are pytree nodes), and the tactic gives a leaf of the
same shape the same split, so every copy of a parameter is sharded as it
is. A population's state (RL seeds, a sweep's configurations) is split
along its leading member axis over ``data`` instead.

Bad rules are refused in one sentence before anything is built: an
unknown logical name, a mesh axis used twice in one spec, a dimension its
axis does not divide (naming the parameter and its shape).
"""

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from dlcore.config import field
from dlcore.errors import ConfigError

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # A batch's leading axis is split over these.
LOGICAL_RULES = ("batch=data", "embed=fsdp", "mlp=tensor", "heads=tensor",
                 "kv=", "vocab=tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """The device mesh: how many devices along each axis (one may be -1: the rest)."""
  data: int = field(-1, "devices along the data axis: the batch is split, "
                    "parameters are copied (-1: the devices the other axes "
                    "leave)", valid="[-1, inf)")
  fsdp: int = field(1, "devices along the fsdp axis: the batch and every "
                    "large parameter and its optimizer state are split "
                    "(fully sharded data parallelism; -1: the rest)",
                    valid="[-1, inf)")
  tensor: int = field(1, "devices along the tensor axis: the layers of a "
                      "model with logical axes are split (tensor "
                      "parallelism; -1: the rest)", valid="[-1, inf)")


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
  """How a state's leaves are split over the mesh (see the module docstring)."""
  logical_rules: tuple[str, ...] = field(
      LOGICAL_RULES, "'LOGICAL=MESH_AXIS' rules for models that annotate "
      "their parameters (an empty axis: not split)")
  fsdp_min_size: int = field(1 << 14, "elements below which a parameter "
                             "without logical axes is not split over fsdp",
                             valid="[1, inf)")


def mesh_shape(config: MeshConfig, num_devices: int) -> tuple[int, int, int]:
  """``(data, fsdp, tensor)`` sizes filling ``num_devices`` (``ConfigError`` if they cannot)."""
  sizes = [config.data, config.fsdp, config.tensor]
  fills = [i for i, s in enumerate(sizes) if s == -1]
  if len(fills) > 1 or 0 in sizes:
    raise ConfigError(
        "option mesh.data, option mesh.fsdp and option mesh.tensor must be "
        f"positive, one of them at most -1 (the rest), got {tuple(sizes)}")
  known = math.prod(s for s in sizes if s != -1)
  if fills:
    if num_devices % known:
      raise ConfigError(
          f"the mesh's fixed axes ({known} devices) do not divide the "
          f"{num_devices} devices; choose option mesh sizes whose product "
          f"divides {num_devices}")
    sizes[fills[0]] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ConfigError(
        f"a mesh of {'x'.join(map(str, sizes))} needs {math.prod(sizes)} "
        f"devices, the run has {num_devices}; give one axis -1 or change "
        "option devices")
  return tuple(sizes)


def make_mesh(config: MeshConfig, devices: Sequence[jax.Device]) -> Mesh:
  """The ``(data, fsdp, tensor)`` mesh of ``devices`` (in process order), Auto axis types."""
  shape = mesh_shape(config, len(devices))
  ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
  return Mesh(np.array(ordered).reshape(shape), AXES,
              axis_types=(AxisType.Auto,) * len(AXES))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """A batch's sharding: its leading axis split over the mesh's batch axes."""
  return NamedSharding(mesh, P(tuple(a for a in BATCH_AXES
                                     if a in mesh.axis_names)))


def batch_devices(mesh: Mesh) -> int:
  """How many ways a batch is split."""
  return math.prod(mesh.shape[a] for a in BATCH_AXES if a in mesh.shape)


def parse_logical_rules(rules: Sequence[str]) -> dict[str, str | None]:
  """``("embed=fsdp", "kv=")`` -> ``{"embed": "fsdp", "kv": None}`` (``ConfigError`` if malformed)."""
  parsed = {}
  for rule in rules:
    name, equals, axis = rule.partition("=")
    if not equals or not name or (axis and axis not in AXES):
      raise ConfigError(
          f"option sharding.logical_rules takes 'LOGICAL=MESH_AXIS' with a "
          f"mesh axis among {', '.join(AXES)} (or nothing after '='), got "
          f"{rule!r}")
    parsed.setdefault(name, axis or None)  # The first rule for a name wins.
  return parsed


def _path_name(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/")


def _is_box(x) -> bool:
  return isinstance(x, nn.LogicallyPartitioned)


def _logical_spec(name: str, shape: tuple[int, ...], names: Sequence[str],
                  rules: dict[str, str | None], mesh: Mesh) -> P:
  unknown = [n for n in names if n is not None and n not in rules]
  if unknown:
    raise ConfigError(
        f"parameter {name} {list(shape)} has logical axis {unknown[0]!r}, "
        "which option sharding.logical_rules does not map; add a rule "
        f"'{unknown[0]}=MESH_AXIS' (the rules map "
        f"{', '.join(sorted(rules))})")
  axes = [None if n is None else rules[n] for n in names]
  used = [a for a in axes if a is not None]
  if len(used) != len(set(used)):
    twice = next(a for a in used if used.count(a) > 1)
    raise ConfigError(
        f"option sharding.logical_rules map two axes {tuple(names)} of "
        f"parameter {name} onto mesh axis {twice!r}; a mesh axis splits at "
        "most one dimension of an array")
  for dim, axis in zip(shape, axes):
    if axis is not None and dim % mesh.shape[axis]:
      raise ConfigError(
          f"parameter {name} of shape {list(shape)} cannot be split over "
          f"mesh axis {axis!r} of {mesh.shape[axis]} devices: {dim} does "
          "not divide; change the mesh or option sharding.logical_rules")
  return P(*axes)


def _fsdp_spec(shape: tuple[int, ...], mesh: Mesh, min_size: int) -> P:
  """big_vision's fsdp tactic: the largest dimension the fsdp axis divides, for large leaves."""
  ways = mesh.shape.get("fsdp", 1)
  if ways == 1 or math.prod(shape) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % ways == 0:
      return P(*[("fsdp" if d == dim else None) for d in range(len(shape))])
  return P()


def state_specs(abstract: Any, mesh: Mesh, config: ShardingConfig, *,
                population: bool = False) -> Any:
  """A ``PartitionSpec`` for every leaf of ``abstract`` (leaves may be Flax boxes).

  ``population``: the leaves carry a leading member axis, split over
  ``data`` (and nothing else).
  """
  rules = parse_logical_rules(config.logical_rules)

  def spec(path, leaf):
    if population:
      return P("data") if getattr(leaf, "ndim", 0) else P()
    name = _path_name(path)
    if _is_box(leaf):
      return _logical_spec(name, tuple(leaf.value.shape), leaf.names, rules,
                           mesh)
    if "params" not in name and "opt_state" not in name:
      return P()
    return _fsdp_spec(tuple(getattr(leaf, "shape", ())), mesh,
                      config.fsdp_min_size)

  return jax.tree_util.tree_map_with_path(spec, abstract, is_leaf=_is_box)


def state_shardings(abstract: Any, mesh: Mesh, config: ShardingConfig, *,
                    population: bool = False) -> Any:
  """``NamedSharding`` s for ``abstract`` once unboxed (``nn.meta.unbox``); see ``state_specs``."""
  specs = state_specs(abstract, mesh, config, population=population)
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def placement(state: Any, mesh: Mesh | None) -> dict[str, Any]:
  """Where ``state`` lives: the mesh, and the most parameter and optimizer bytes one device holds.

  Measured from the arrays' addressable shards. Leaves under ``opt_state``
  (moments, an EMA) are the optimizer's; other leaves under a ``params``
  name (``params``, ``target_params``) are parameters.
  """
  kinds: dict[str, list[Any]] = {"param": [], "optimizer": []}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    name = _path_name(path)
    if "opt_state" in name:
      kinds["optimizer"].append(leaf)
    elif "params" in name:
      kinds["param"].append(leaf)
  return {"mesh": None if mesh is None else dict(mesh.shape),
          **{f"{kind}_bytes_per_device": per_device_bytes(leaves)
             for kind, leaves in kinds.items()}}


def per_device_bytes(tree: Any) -> int:
  """The most bytes of ``tree``'s arrays any one device holds, read from their shards."""
  held: dict[Any, int] = {}
  for leaf in jax.tree.leaves(tree):
    for shard in getattr(leaf, "addressable_shards", ()):
      held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
  return max(held.values(), default=0)


def spec_text(leaf: Any) -> str:
  """A leaf's partition spec: ``P('fsdp', None)``; ``P()`` on one device, ``-`` on the host."""
  placed = getattr(leaf, "sharding", None)
  if placed is None:
    return "-"
  return str(getattr(placed, "spec", P()))
