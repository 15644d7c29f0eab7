"""One optimizer config for every network, composed from optax parts.

Usage::

  config = OptimizerConfig(name="adamw", lr=1e-3, schedule="cosine",
                           warmup_steps=500, weight_decay=0.05, clip_norm=1.0,
                           accumulate=4, ema_decay=0.999,
                           freeze=("Conv_0/.*",), lr_mult=("Dense_0/.*=0.1",))
  check_optimizer(config, params, total_steps=10_000)  # ConfigError
  tx = create_optimizer(config, total_steps=10_000)
  state = create_train_state(model, tx, x, key, frozen=config.freeze)
  ...
  eval_params = params_for_eval(state)  # The EMA when switched on.
  eval_state = with_ema_params(state)   # Any pytree of train states.

The transformation is, for ``k = accumulate``::

  MultiSteps(chain(partition({"trainable": chain(clip, decay, rule(lr_t),
                                                 scale_by_lr_mult),
                              "frozen": set_to_zero()}, labels),
                   params_ema(ema_decay)), every_k_schedule=k)

Only the configured parts are composed: without frozen patterns there is
no ``partition``, without clipping, decay, EMA or accumulation none of
theirs, and a constant learning rate is a number, not a schedule with a
step counter: the default step is the bare rule, the same program as a
hand-written ``optax.adam`` (checked on the DQN update's optimised HLO).

- ``lr_t``: a linear warmup from 0 to ``lr`` over ``warmup_steps`` updates,
  then ``constant``, ``cosine`` or ``linear`` decay reaching 0 at update
  ``T = total_steps // k`` (the count after the last update); warmup+cosine
  is ``optax.warmup_cosine_decay_schedule(0, lr, warmup_steps, T)``.
  ``constant_then_linear`` (CycleGAN's) keeps ``lr`` for the first half of
  the ``D = T - warmup_steps`` updates after warmup and decays linearly to
  0 over the rest: the decay starts at update ``warmup_steps + D // 2``.
  Schedules count real updates: ``MultiSteps`` calls the inner chain once
  per ``k`` micro-batches, with the mean of their gradients.
- Clipping (``optax.clip_by_global_norm``) is first among the trainable
  leaves: frozen gradients do not count towards the global norm, so a large
  frozen backbone cannot shrink the head's updates.
- Weight decay touches only the leaves that are weights by name
  (``decay_mask``: a ``kernel`` or an ``*embedding*``), never biases,
  normalisation scales or learned log-scales, whatever their shape (an
  attention layer's biases are ``[heads, head_dim]``). ``adamw`` decouples it:
  ``w <- w - lr_t (adam(g) + wd w)``; ``adam`` and ``sgd`` add it to the
  gradient before the rule (L2 regularisation, ``g + wd w``), as PyTorch does.
- Frozen leaves (``re.fullmatch`` of a ``freeze`` pattern on the
  ``"/"``-joined path, e.g. ``"Dense_1/.*"``) get zero updates and no
  optimizer moments; ``TrainState(frozen=...)`` also keeps their BatchNorm
  statistics.
- Learning-rate multipliers (``lr_mult``, ``"PATTERN=X"`` with ``X > 0``)
  multiply the final update of each leaf whose path the first matching
  pattern fullmatches by ``X``: the leaf trains at ``X * lr_t`` (decoupled
  weight decay scales with it, as it does with ``lr_t``). Adam's update is
  linear in ``lr``, so this is exactly a per-leaf learning rate
  (discriminative fine-tuning, as big_vision's ``lr_mults``). Leaves that
  no pattern matches keep ``X = 1`` and are not multiplied at all.
- ``params_ema`` keeps ``ema <- d ema + (1 - d) params`` after each update.
"""

import dataclasses
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from dlcore.config import field
from dlcore.errors import ConfigError

# A float32 parameter overflows when scaled by more than this.
FLOAT32_MAX = "3.4e38"

_RULES = {
    "adam": lambda c, lr: optax.chain(_l2(c), optax.adam(lr, c.b1, c.b2)),
    "adamw": lambda c, lr: optax.adamw(lr, c.b1, c.b2,
                                       weight_decay=c.weight_decay,
                                       mask=decay_mask),
    "sgd": lambda c, lr: optax.chain(
        _l2(c), optax.sgd(lr, c.momentum or None, c.nesterov)),
}
_DECAYS = {  # (peak value, steps after warmup) -> schedule reaching 0.
    "constant": lambda lr, steps: optax.constant_schedule(lr),
    "cosine": optax.cosine_decay_schedule,
    "linear": lambda lr, steps: optax.linear_schedule(lr, 0.0, steps),
    "constant_then_linear": lambda lr, steps: optax.join_schedules(
        [optax.constant_schedule(lr),
         optax.linear_schedule(lr, 0.0, steps - steps // 2)], [steps // 2]),
}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  name: str = field("adam", "update rule", choices=tuple(_RULES))
  lr: float = field(1e-3, "peak learning rate", valid=f"(0, {FLOAT32_MAX}]")
  schedule: str = field("constant", "learning-rate decay after warmup, to 0 "
                        "at the last update", choices=tuple(_DECAYS))
  warmup_steps: int = field(0, "updates of linear warmup from 0 to lr",
                           valid="[0, inf)")
  b1: float = field(0.9, "Adam's first-moment decay", valid="[0, 1)")
  b2: float = field(0.999, "Adam's second-moment decay", valid="[0, 1)")
  momentum: float = field(0.9, "SGD momentum (0 = none)", valid="[0, 1)")
  nesterov: bool = field(False, "Nesterov momentum for SGD")
  weight_decay: float = field(0.0, "weight decay of kernels and "
                              "embeddings; decoupled for adamw, L2 for adam "
                              "and sgd", valid=f"[0, {FLOAT32_MAX}]")
  clip_norm: float = field(0.0, "clip gradients to this global norm (0 = off)",
                           valid=f"[0, {FLOAT32_MAX}]")
  accumulate: int = field(1, "micro-batches per update", valid="[1, inf)")
  ema_decay: float = field(0.0, "decay of the parameters' moving average "
                           "used for evaluation (0 = off)", valid="[0, 1)")
  freeze: tuple[str, ...] = field((), "regexes of parameter paths to freeze "
                                  "(re.fullmatch on 'Module_0/kernel')")
  lr_mult: tuple[str, ...] = field((), "learning-rate multipliers "
                                   "'PATTERN=X' (X > 0; the first pattern "
                                   "that fullmatches a path wins)")


def path_name(path) -> str:
  """A key path as ``"Module_0/kernel"``."""
  return jax.tree_util.keystr(path, simple=True, separator="/")


def frozen_mask(patterns: tuple[str, ...], tree: Any) -> Any:
  """Booleans like ``tree``: does a pattern fullmatch the leaf's path?"""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(re.fullmatch(p, path_name(path)) for p in patterns),
      tree)


def parse_lr_mults(specs: tuple[str, ...], prefix: str = "optimizer"
                   ) -> tuple[tuple[str, float], ...]:
  """``("Conv_.*=0.1",)`` -> ``(("Conv_.*", 0.1),)``; ``ConfigError`` if malformed."""
  parsed = []
  for spec in specs:
    pattern, equals, value = spec.rpartition("=")
    try:
      mult = float(value) if equals and pattern else None
    except ValueError:
      mult = None
    _require(mult is not None and 0 < mult <= float(FLOAT32_MAX),
             f"option {prefix}.lr_mult takes 'PATTERN=X' with a number "
             f"0 < X <= {FLOAT32_MAX} (freeze a leaf with option "
             f"{prefix}.freeze instead of X = 0), got {spec!r}")
    try:
      re.compile(pattern)
    except re.error as e:
      raise ConfigError(f"option {prefix}.lr_mult has an invalid regular "
                        f"expression {pattern!r} ({e})") from None
    parsed.append((pattern, mult))
  return tuple(parsed)


def lr_mult_of(mults: tuple[tuple[str, float], ...], path: str) -> float:
  """The multiplier of the first pattern that fullmatches ``path``; else 1."""
  return next((m for p, m in mults if re.fullmatch(p, path)), 1.0)


def scale_by_lr_mult(
    mults: tuple[tuple[str, float], ...]) -> optax.GradientTransformation:
  """Multiplies the update of each leaf by ``lr_mult_of(mults, path)``; stateless.

  Leaves hidden by ``optax.partition`` (``MaskedNode``) have no leaves and
  are passed over.
  """
  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda path, u: (u if (m := lr_mult_of(mults, path_name(path))) == 1
                         else u * jnp.asarray(m, u.dtype)), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update)


def decay_mask(params: Any) -> Any:
  """True for the leaves weight decay applies to: kernels and embeddings, by name.

  A leaf is a weight when its own name (the last part of its path) is
  ``kernel`` or holds ``embedding``; biases, normalisation scales and
  learned scales (``log_std``) are not, whatever their ``ndim``.
  """
  return jax.tree_util.tree_map_with_path(
      lambda path, _: bool(re.fullmatch(r"kernel|.*embedding.*",
                                        path_name(path).rpartition("/")[2])),
      params)


def _l2(config: OptimizerConfig) -> optax.GradientTransformation:
  if config.weight_decay == 0:  # Not even a multiplication by 0 in the step.
    return optax.identity()
  return optax.add_decayed_weights(config.weight_decay, decay_mask)


def learning_rate_schedule(config: OptimizerConfig,
                           num_updates: int) -> optax.Schedule:
  """``lr_t`` for update ``t``; see the module docstring."""
  decay = _DECAYS[config.schedule](
      config.lr, max(num_updates - config.warmup_steps, 1))
  if config.warmup_steps == 0:
    return decay
  warmup = optax.linear_schedule(0.0, config.lr, config.warmup_steps)
  return optax.join_schedules([warmup, decay], [config.warmup_steps])


class ParamsEmaState(NamedTuple):
  ema: Any  # Same tree as the parameters.


def params_ema(decay: float) -> optax.GradientTransformation:
  """Passes updates on; tracks ``ema <- decay ema + (1 - decay) new_params``."""

  def init(params):
    return ParamsEmaState(ema=jax.tree.map(jnp.copy, params))  # Own buffers.

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("params_ema needs the parameters: call "
                       "update(updates, state, params)")
    new_params = optax.apply_updates(params, updates)
    return updates, ParamsEmaState(
        optax.incremental_update(new_params, state.ema, 1.0 - decay))

  return optax.GradientTransformation(init, update)


def ema_params(opt_state: Any) -> Any | None:
  """The parameters' moving average held in ``opt_state``, or None when off."""
  found = optax.tree_utils.tree_get(opt_state, "ParamsEmaState")
  return None if found is None else found.ema


def params_for_eval(state) -> Any:
  """A ``TrainState``'s EMA parameters when tracked, else its ``params``."""
  ema = ema_params(state.opt_state)
  return state.params if ema is None else ema


def with_ema_params(tree: Any) -> Any:
  """``tree`` with every ``TrainState`` in it using its EMA parameters, where kept.

  Evaluation and samples read this view: a GAN's generator, a classifier,
  a DQN agent alike.
  """
  is_state = lambda x: isinstance(x, train_state.TrainState)
  return jax.tree.map(
      lambda x: x.replace(params=params_for_eval(x)) if is_state(x) else x,
      tree, is_leaf=is_state)


def _require(ok: bool, sentence: str) -> None:
  if not ok:
    raise ConfigError(sentence)


def check_optimizer(config: OptimizerConfig, params: Any = None, *,
                    total_steps: int | None = None,
                    prefix: str = "optimizer") -> None:
  """Raises ``ConfigError`` for options that do not fit together or the parameters.

  ``validate`` has checked each option on its own (ranges, choices); this
  checks Nesterov without momentum, accumulation and warmup against the
  run's ``total_steps``, the ``freeze`` and ``lr_mult`` patterns, and, with
  ``params``, that every pattern matches a parameter path. Messages name
  the options of the section ``prefix`` (``g_optimizer``).
  """
  c = config
  _require(not (c.nesterov and c.momentum == 0), f"option {prefix}.nesterov "
           f"needs option {prefix}.momentum above 0")
  if total_steps is not None:
    updates = total_steps // c.accumulate
    _require(updates >= 1, f"option {prefix}.accumulate must be at most the "
             f"run's {total_steps} steps, got {c.accumulate}")
    _require(c.warmup_steps < updates, f"option {prefix}.warmup_steps must "
             f"be below the number of updates, {updates} ({total_steps} steps "
             f"// option {prefix}.accumulate {c.accumulate}), got "
             f"{c.warmup_steps}")
  for pattern in c.freeze:
    try:
      re.compile(pattern)
    except re.error as e:
      raise ConfigError(f"option {prefix}.freeze has an invalid regular "
                        f"expression {pattern!r} ({e})") from None
  mults = parse_lr_mults(c.lr_mult, prefix)
  if params is not None:
    check_freeze(c.freeze, params, prefix)
    check_freeze(tuple(p for p, _ in mults), params, prefix, "lr_mult")
    trainable = [path_name(path) for path, _ in
                 jax.tree_util.tree_leaves_with_path(params)
                 if not any(re.fullmatch(p, path_name(path))
                            for p in c.freeze)]
    _require(bool(trainable), f"option {prefix}.freeze freezes every "
             "parameter, so training would change nothing; leave some "
             "parameters trainable")


def check_freeze(patterns: tuple[str, ...], params: Any,
                 prefix: str = "optimizer", option: str = "freeze") -> None:
  """Raises ``ConfigError`` for a pattern that matches no path of ``params``.

  A misspelt pattern must not freeze (or rescale) nothing silently; the
  message names option ``prefix.option``.
  """
  paths = [path_name(path)
           for path, _ in jax.tree_util.tree_leaves_with_path(params)]
  for pattern in patterns:
    _require(any(re.fullmatch(pattern, p) for p in paths), f"option "
             f"{prefix}.{option} pattern {pattern!r} matches no parameter "
             f"path; the paths look like {', '.join(paths[:4])}")


def create_optimizer(config: OptimizerConfig,
                     total_steps: int) -> optax.GradientTransformation:
  """The transformation of ``config`` for a run of ``total_steps`` micro-steps.

  ``config`` must have passed ``validate`` and ``check_optimizer``; see the
  module docstring for the composition.
  """
  lr = (config.lr if config.schedule == "constant" and not config.warmup_steps
        else learning_rate_schedule(config, total_steps // config.accumulate))
  clip = ([optax.clip_by_global_norm(config.clip_norm)]
          if config.clip_norm > 0 else [])
  mults = parse_lr_mults(config.lr_mult)
  tx = optax.chain(*clip, _RULES[config.name](config, lr),
                   *([scale_by_lr_mult(mults)] if mults else []))
  if config.freeze:  # Without frozen parameters, no partition in the step.
    labels = lambda p: jax.tree.map(lambda f: "frozen" if f else "trainable",
                                    frozen_mask(config.freeze, p))
    tx = optax.partition({"trainable": tx, "frozen": optax.set_to_zero()},
                         labels)
  if config.ema_decay > 0:
    tx = optax.chain(tx, params_ema(config.ema_decay))
  if config.accumulate > 1:
    tx = optax.MultiSteps(tx, config.accumulate).gradient_transformation()
  return tx
