"""The torchvision ResNet converter: dlcore's logits equal PyTorch's (where torch is installed)."""

import jax
import numpy as np
import pytest

from dlcore import transfer
from dlcore.from_torch import resnet_variables
from dlcore.models import create_classifier

torch = pytest.importorskip("torch")


def _import_torchvision():
  """torchvision, also beside the CPU build of torch.

  PyPI's torchvision wheel links its C++ ops against the CUDA build of
  torch; beside the CPU build they do not load, which torchvision allows,
  except that 0.28 then fails on import registering fake kernels for the
  ``nms`` and ``qnms`` ops it could not load. The models use no C++ op, so
  declaring those two schemas is enough.
  """
  try:
    import torchvision  # pylint: disable=import-outside-toplevel
  except ModuleNotFoundError:
    pytest.skip("needs torchvision (the bench extra)", allow_module_level=True)
  except RuntimeError as e:
    if "torchvision::nms does not exist" not in str(e):
      raise
    library = torch.library.Library("torchvision", "DEF")  # Kept alive below.
    for op in ("nms", "qnms"):
      library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold)"
                     " -> Tensor")
    import torchvision  # pylint: disable=import-outside-toplevel
    torchvision.schemas_declared_by_dlcore_tests = library
  return torchvision


torchvision = _import_torchvision()


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_converted_torchvision_resnet_gives_pytorchs_logits(name):
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(weights=None, num_classes=7)
  with torch.no_grad():  # Statistics and affine maps that are not identities.
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.uniform_(-0.5, 0.5)
        module.running_var.uniform_(0.5, 2.0)
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
  net.eval()
  images = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(images)).numpy()

  model = create_classifier(f"{name}_imagenet", 7)
  fresh = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32)))
  variables = transfer.merge(resnet_variables(net.state_dict()),
                             dict(fresh), head=model.head_name,
                             reinit=())  # Strict: every leaf.
  logits = model.apply(variables, images.transpose(0, 2, 3, 1))
  print(f"{name}: max |dlcore - torch| = {np.abs(logits - expected).max():.2e}"
        f" (logits up to {np.abs(expected).max():.2f})")
  np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
