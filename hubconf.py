"""torch.hub entry points: every videozoo builder, e.g. ``torch.hub.load(repo, "r2plus1d_18", weights="DEFAULT")``."""

import videozoo as _videozoo

dependencies = ["torch", "requests", "tqdm", "filelock", "safetensors"]

globals().update({_name: _videozoo.get_model_builder(_name) for _name in _videozoo.list_models()})
