"Helpers shared by the inversion and P2P tests: a tiny model whose DDIM round trips mean something, and a drawing."
from functools import cache

from PIL import Image, ImageDraw

from dpl_nb.inversion import invert
from dpl_nb.models import tiny_bundle

PROMPT = "a red {circle} and a yellow {square}"


@cache
def damped_tiny_bundle(seed: int = 0, scale: float = 0.03):
    "Tiny model whose UNet predicts small noise (output convolution scaled), so DDIM round trips mean something"
    return tiny_bundle(seed=seed, latent_size=16, out_scale=scale)


def shapes_picture(size: int) -> Image.Image:
    "A red circle and a yellow square on blue, `size` pixels square"
    picture = Image.new("RGB", (size, size), (90, 140, 200))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((0.1 * size, 0.2 * size, 0.5 * size, 0.6 * size), fill=(220, 50, 40))
    draw.rectangle((0.55 * size, 0.3 * size, 0.9 * size, 0.8 * size), fill=(250, 210, 40))
    return picture


@cache
def nti_inversion(steps: int = 10):
    "The bundle and a canonical null-text inversion of the drawing, made once per test session"
    bundle = damped_tiny_bundle()
    return bundle, invert(bundle, shapes_picture(bundle.image_size), PROMPT, num_steps=steps, progress=False)
