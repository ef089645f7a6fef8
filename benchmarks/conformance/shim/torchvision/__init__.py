"""A stand-in for torchvision in the reference environment, where no torchvision build matches its CPU torch.

The official DPL code uses torchvision for one thing: `transforms.Compose([transforms.ToPILImage()])` on a 2-D mask
(`tools/sd_study_utils.save_mask`, which writes the background and noun masks that its DPL stage reads). This package
provides exactly that, with torchvision's rule for such a tensor: float values times 255, as bytes, mode "L".
"""
from . import transforms  # noqa: F401
