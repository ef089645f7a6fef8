"""Run by the reference environment's python, in the official DPL checkout: the gradient of the official token loss.

The first token pass of `_3_dpl_inv.py`'s first denoising step, put together from the official pipeline's own
objects (`StableDiffusion_MyPipeline.from_pretrained`, `prepare_unet`, its `AttentionStore` and processors, its
`_aggregate_and_get_max_attention_per_token`, `_compute_loss`, `_compute_BG` and `_compute_cosine`, DPL.sh's weights),
given the prompt's text embeddings (the file INPUTS, written by compare.py) as a leaf: the loss's gradient at them,
once with the inverted latent as the reference keeps it (channels-last memory, from its channels-last image tensor)
and once with the same values in contiguous memory. Nothing of the reference is copied or changed.

    python reference_gradient.py MODEL RESULTS INPUTS OUT   (cwd: the DPL checkout)
"""
import pickle
import sys
from pathlib import Path

import torch
from diffusers import DDIMScheduler

sys.path.insert(0, ".")
import pipelines.null_attend_textinv_pipeline as official  # noqa: E402  (the checkout's module)


def main():
    model, results, inputs, out = sys.argv[1:5]
    torch.set_num_threads(1)
    given = torch.load(inputs)
    pipeline = official.StableDiffusion_MyPipeline.from_pretrained(model, torch_dtype=torch.float32)
    pipeline.unet = official.prepare_unet(pipeline.unet)
    name = next((Path(results) / "latents").glob("*.pkl"))
    with open(name, "rb") as f:
        latent = pickle.load(f)[-1]
    scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    scheduler.set_timesteps(given["steps"])
    t, indices, weights = scheduler.timesteps[0], given["indices"], given["weights"]
    background = given["background"].float()[None]
    grads = {}
    for layout, sample in (("as_kept", latent), ("contiguous", latent.contiguous())):
        pipeline.attention_store = official.AttentionStore(attn_res=16)
        pipeline.register_attention_control()
        text = given["text"].clone().requires_grad_(True)
        with torch.enable_grad():
            pipeline.unet(sample, t, encoder_hidden_states=text)
            peaks, maps = pipeline._aggregate_and_get_max_attention_per_token(indices=indices, smooth_op=True,
                                                                               softmax_op=True)
            loss = (pipeline._compute_loss(peaks, loss_type="max") * weights[0]
                    + pipeline._compute_BG(maps, indices, background) * weights[1]
                    + pipeline._compute_cosine(maps, indices) * weights[2])
            grads[layout] = torch.autograd.grad(loss, text)[0]
        grads[f"{layout}_loss"] = float(loss)
    grads["channels_last"] = latent.is_contiguous(memory_format=torch.channels_last) and not latent.is_contiguous()
    torch.save(grads, out)


if __name__ == "__main__":
    main()
