"""Loaded by the reference environment's python (PYTHONPATH): lets the official DPL code run on a CPU, unchanged.

- every move to "cuda" (Tensor.to/.cuda, Module.to/.cuda, DiffusionPipeline.to) stays on the CPU;
- under a diffusers that no longer has `diffusers.models.cross_attention` (0.20 on), that import finds the module
  that replaced it (`attention_processor`, whose `Attention` was called `CrossAttention`); the harness's environment
  pins diffusers 0.19.3, which still has it (the code also imports `diffusers.utils.randn_tensor`, gone in 0.21).
- with DPL_REF_NOUNS set (comma-separated words), nltk's tokenizer and part-of-speech tagger, whose data cannot be
  downloaded here, are replaced: the prompt is split on spaces and the listed words are the nouns (tag NN), which is
  what the tagger finds in the harness's prompts ("a cat and a dog").
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
