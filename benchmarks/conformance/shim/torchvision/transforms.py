"The two transforms the official DPL code uses, for 2-D masks only (see the package's docstring)"
import numpy as np
import torch
from PIL import Image


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class ToPILImage:
    def __call__(self, pic):
        if not isinstance(pic, torch.Tensor) or pic.dim() not in (2, 3) or (pic.dim() == 3 and pic.shape[0] != 1):
            raise NotImplementedError("this stand-in converts only 2-D (or 1xHxW) masks")
        pic = pic.reshape(pic.shape[-2:])
        if pic.is_floating_point():
            pic = pic.mul(255).byte()
        return Image.fromarray(pic.cpu().numpy().astype(np.uint8), mode="L")
