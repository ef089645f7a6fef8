"The installed package: version, modules, exported names."
import importlib
import importlib.metadata
from configparser import ConfigParser
from pathlib import Path

import dpl_nb

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_settings():
    cfg = ConfigParser()
    cfg.read(ROOT / "settings.ini")
    assert dpl_nb.__version__ == cfg["DEFAULT"]["version"]
    assert importlib.metadata.version("dpl_nb") == dpl_nb.__version__


def test_every_exported_symbol_imports():
    from dpl_nb._modidx import d
    symbols = d["syms"]
    assert {"dpl_nb.models", "dpl_nb.prompts", "dpl_nb.attention"} <= set(symbols)
    for module_name, names in symbols.items():
        module = importlib.import_module(module_name)
        for qualified in names:
            obj = module
            for part in qualified.split(".")[2:]:
                obj = getattr(obj, part)
            assert obj is not None, qualified


def test_public_api():
    from dpl_nb.attention import AttentionStore, capture, cross_maps, map_explorer, select_layers, self_maps
    from dpl_nb.models import Bundle, UNetCounter, load_bundle, load_image, tiny_bundle, to_pil
    from dpl_nb.prompts import encode_prompts, parse_prompt, refinement_mapper, replacement_mapper
    assert callable(load_bundle) and callable(parse_prompt) and callable(capture)
