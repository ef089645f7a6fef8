"""Loaded by the reference environment's python (PYTHONPATH): lets the official DPL code run on a CPU, unchanged.

- every move to "cuda" (Tensor.to/.cuda, Module.to/.cuda, DiffusionPipeline.to) stays on the CPU;
- under a diffusers that no longer has `diffusers.models.cross_attention` (0.20 on), that import finds the module
  that replaced it (`attention_processor`, whose `Attention` was called `CrossAttention`); the harness's environment
  pins diffusers 0.19.3, which still has it (the code also imports `diffusers.utils.randn_tensor`, gone in 0.21).
- with DPL_REF_NOUNS set (comma-separated words), nltk's tokenizer and part-of-speech tagger, whose data cannot be
  downloaded here, are replaced: the prompt is split on spaces and the listed words are the nouns (tag NN), which is
  what the tagger finds in the harness's prompts ("a cat and a dog").
- with DPL_REF_DUMP set (a file name), what stage D (`_4_image_edit.py`) computes on the way is recorded and saved
  there with torch.save when the process ends: each DDIM step's input and output latents (`sample`, `prev_sample`),
  its guided noise (`model_output`) and timestep, the UNet's inputs (`unet_sample`, `encoder_hidden_states`),
  the latents the edit pipeline decodes (`final`), and the maps its local blend reads (`blend_maps`, the output of
  `StableDiffusion_EditPipeline._get_attention_maps`, one per step). The methods are wrapped, not changed.
- with DPL_REF_ADAM_DUMP set (a file name), the first DPL_REF_ADAM_CALLS (default 21) AdamW updates are recorded:
  the gradient and the value after the update of the parameter's last DPL_REF_ADAM_ROWS (default 2) rows, which are
  the placeholder tokens' rows of `_3_dpl_inv.py`'s embedding matrix; with them, the first token pass's gradients at
  the text encoder's output and at the aggregated maps the losses read (and those maps). The file is rewritten after
  every update, so the run may be stopped once it holds them.
Nothing else of the reference's behaviour changes.
"""
import os
import sys

import torch


def _cpu(device):
    if isinstance(device, torch.device):
        return torch.device("cpu") if device.type == "cuda" else device
    if isinstance(device, str) and device.startswith("cuda"):
        return "cpu"
    return device


def _patched_to(original):
    def to(self, *args, **kwargs):
        args = tuple(_cpu(a) for a in args)
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        return original(self, *args, **kwargs)
    return to



def _patch_on_import(module_name: str, patch):
    "Call `patch(module)` right after `module_name` is first imported (the reference's file is not touched)"
    import importlib.abc
    import importlib.util

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != module_name:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                patch(module)
            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _Hook())


torch.Tensor.to = _patched_to(torch.Tensor.to)
torch.nn.Module.to = _patched_to(torch.nn.Module.to)
torch.Tensor.cuda = lambda self, *args, **kwargs: self
torch.nn.Module.cuda = lambda self, *args, **kwargs: self

try:
    import importlib.util

    from diffusers import DiffusionPipeline

    DiffusionPipeline.to = _patched_to(DiffusionPipeline.to)
    if importlib.util.find_spec("diffusers.models.cross_attention") is None:
        import diffusers.models.attention_processor as _attention_processor
        _attention_processor.CrossAttention = _attention_processor.Attention
        sys.modules["diffusers.models.cross_attention"] = _attention_processor
except ImportError:  # not the reference environment
    pass


if os.environ.get("DPL_REF_NOUNS"):
    import nltk

    _nouns = {w.strip() for w in os.environ["DPL_REF_NOUNS"].split(",") if w.strip()}
    nltk.word_tokenize = lambda text, *args, **kwargs: text.split()
    nltk.pos_tag = lambda words, *args, **kwargs: [(w, "NN" if w in _nouns else "DT") for w in words]


if os.environ.get("DPL_REF_DUMP"):
    import atexit

    from diffusers.schedulers.scheduling_ddim import DDIMScheduler

    _dump = {"sample": [], "prev_sample": [], "model_output": [], "timestep": [], "final": [], "blend_maps": [],
             "encoder_hidden_states": [], "unet_sample": []}

    def _recorded(original, record):
        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            record(args, kwargs, out)
            return out
        return wrapper

    def _record_step(args, kwargs, out):
        sample = kwargs["sample"] if "sample" in kwargs else args[3]
        _dump["model_output"].append((kwargs["model_output"] if "model_output" in kwargs else args[1]).detach().clone())
        _dump["timestep"].append(int(kwargs["timestep"] if "timestep" in kwargs else args[2]))
        _dump["sample"].append(sample.detach().clone())
        _dump["prev_sample"].append((out.prev_sample if hasattr(out, "prev_sample") else out[0]).detach().clone())

    DDIMScheduler.step = _recorded(DDIMScheduler.step, _record_step)

    from diffusers import UNet2DConditionModel

    def _record_unet(args, kwargs, out):
        _dump["encoder_hidden_states"].append(kwargs["encoder_hidden_states"].detach().clone())
        _dump["unet_sample"].append(args[1].detach().clone())

    UNet2DConditionModel.forward = _recorded(UNet2DConditionModel.forward, _record_unet)

    def _patch_edit_pipeline(module):
        pipe = module.StableDiffusion_EditPipeline
        pipe.decode_latents = _recorded(pipe.decode_latents,
                                        lambda a, k, out: _dump["final"].append(a[1].detach().clone()))
        pipe._get_attention_maps = _recorded(pipe._get_attention_maps,
                                             lambda a, k, out: _dump["blend_maps"].append(out.detach().clone()))

    _patch_on_import("pipelines.edit_pipeline", _patch_edit_pipeline)
    atexit.register(lambda: torch.save(_dump, os.environ["DPL_REF_DUMP"]))


if os.environ.get("DPL_REF_ADAM_DUMP"):
    _adam_path = os.environ["DPL_REF_ADAM_DUMP"]
    _adam_rows = int(os.environ.get("DPL_REF_ADAM_ROWS", "2"))
    _adam_calls = int(os.environ.get("DPL_REF_ADAM_CALLS", "21"))
    _adam = {"grad": [], "param": []}
    _adamw_step = torch.optim.AdamW.step

    def _recorded_adamw_step(self, *args, **kwargs):
        param = self.param_groups[0]["params"][0]
        grad = param.grad[-_adam_rows:].detach().clone()
        out = _adamw_step(self, *args, **kwargs)
        if len(_adam["grad"]) < _adam_calls:
            _adam["grad"].append(grad)
            _adam["param"].append(param.detach()[-_adam_rows:].clone())
            torch.save(_adam, _adam_path + ".tmp")
            os.replace(_adam_path + ".tmp", _adam_path)
        return out

    torch.optim.AdamW.step = _recorded_adamw_step

    # the gradients of the first token pass upstream of the tokens: at the text encoder's output and at the
    # aggregated 16x16 maps the losses read (`_aggregate_and_get_max_attention_per_token`'s second output)
    def _first_grad(key):
        def hook(grad):
            if key not in _adam:
                _adam[key] = grad.detach().clone()
        return hook

    from transformers import CLIPTextModel

    _clip_forward = CLIPTextModel.forward

    def _hooked_clip_forward(self, *args, **kwargs):
        out = _clip_forward(self, *args, **kwargs)
        if out[0].requires_grad and "grad_text" not in _adam:
            out[0].register_hook(_first_grad("grad_text"))
        return out

    CLIPTextModel.forward = _hooked_clip_forward

    def _patch_dpl_pipeline(module):
        pipe = module.StableDiffusion_MyPipeline
        aggregate = pipe._aggregate_and_get_max_attention_per_token

        def hooked(self, *args, **kwargs):
            out = aggregate(self, *args, **kwargs)
            if out[1].requires_grad and "grad_maps" not in _adam:
                out[1].register_hook(_first_grad("grad_maps"))
                _adam["maps"] = out[1].detach().clone()
            return out
        pipe._aggregate_and_get_max_attention_per_token = hooked

    _patch_on_import("pipelines.null_attend_textinv_pipeline", _patch_dpl_pipeline)
