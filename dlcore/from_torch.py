"""torchvision ResNet weights as dlcore variables.

Usage (``torch`` and ``torchvision`` are needed only to make the state dict)::

  import torchvision
  net = torchvision.models.resnet50(weights="IMAGENET1K_V2")  # Downloads.
  variables = from_torch.resnet_variables(net.state_dict())
  transfer.save_variables("resnet50.npz", variables)
  # python experiments/finetune.py --model resnet50_imagenet \\
  #     --init-from resnet50.npz ...

``resnet_variables`` maps torchvision's names onto
``dlcore.models.ImageNetResNet`` (same module names, ``.`` -> ``/``,
``layer1.0`` -> ``layer1_0``, ``downsample.0``/``.1`` ->
``downsample_conv``/``downsample_bn``) and layouts: convolution weights
``[O, I, kh, kw]`` -> kernels ``[kh, kw, I, O]``, linear weights ``[O, I]``
-> ``[I, O]``, BatchNorm ``weight``/``bias`` -> ``scale``/``bias`` in
``params`` and ``running_mean``/``running_var`` -> ``mean``/``var`` in
``batch_stats`` (``num_batches_tracked`` is dropped). torchvision's
ResNets take ImageNet-normalised RGB ``[B, 3, H, W]``; dlcore's the same
images as ``[B, H, W, 3]``.
"""

import re
from typing import Any, Mapping

import numpy as np

from dlcore.errors import ConfigError
from dlcore.transfer import Variables, unflatten

_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"),
              "running_var": ("batch_stats", "var")}


def _module_path(name: str) -> str:
  """``layer1.0.downsample.1`` -> ``layer1_0/downsample_bn``."""
  name = re.sub(r"^(layer\d)\.(\d+)\.", r"\1_\2/", name)
  name = name.replace("downsample.0", "downsample_conv")
  return name.replace("downsample.1", "downsample_bn")


def resnet_variables(state_dict: Mapping[str, Any]) -> Variables:
  """``{"params", "batch_stats"}`` of an ``ImageNetResNet`` from a torchvision ResNet's ``state_dict``.

  Values may be torch tensors or numpy arrays; they come back as float32
  numpy arrays.
  """
  flat = {}
  for name, value in state_dict.items():
    value = np.asarray(value.detach().cpu().numpy() if hasattr(
        value, "detach") else value)
    module, _, leaf = name.rpartition(".")
    path = _module_path(module)
    last = path.rpartition("/")[2]
    if leaf == "num_batches_tracked":
      continue
    if last.startswith("bn") or last == "downsample_bn":
      collection, leaf_name = _BN_LEAVES[leaf]
      flat[f"{collection}/{path}/{leaf_name}"] = value
    elif last == "fc":
      flat[f"params/fc/{'kernel' if leaf == 'weight' else 'bias'}"] = (
          value.T if leaf == "weight" else value)
    elif last.startswith("conv") or last == "downsample_conv":
      if leaf != "weight":
        raise ConfigError(f"state dict entry {name!r} is not a torchvision "
                          "ResNet weight (its convolutions have no bias)")
      flat[f"params/{path}/kernel"] = value.transpose(2, 3, 1, 0)
    else:
      raise ConfigError(f"state dict entry {name!r} is not part of a "
                        "torchvision ResNet")
  return unflatten({k: v.astype(np.float32) for k, v in flat.items()})
