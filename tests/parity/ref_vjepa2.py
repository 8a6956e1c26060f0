r"""Reference cases for V-JEPA 2: the encoders from transformers (``VJEPA2Model``), the classifiers (the
attentive probes on their encoders) from the authors' code (facebookresearch/vjepa2), in the layout of the
Hugging Face files the members load.

The encoders. Each reference is built from a small ``VJEPA2Config`` (2 encoder blocks, 2 heads, tubelets
2x16x16) in the shape of one published architecture: ViT-L's 4x MLPs and ViT-g's 48/11 ones, head widths
that leave 2 channels out of the rotary sections (32 and 44) and one that leaves none (48). Hugging Face
takes frames as ``(B, T, C, H, W)``; ``run`` transposes our ``(B, C, T, H, W)`` input.

* transformers numbers the tokens' rows and columns with the grid of its configured ``crop_size``;
  each case configures the clip it is run on (square), so its rotary positions are the clip's own, as
  in the publisher's code and in videozoo at every size. The encoder's case (``vjepa2_vith_256``) is
  stored at two clip sizes: 8x32x32 (``CASES``) and 16x48x48 (``EXTRA_CASES``, fixtures
  ``<name>-16x48x48``); each also runs at batch 2 and at half the frames in the side environment.
* The pre-training predictor (``VJEPA2Model.predictor``, 12 blocks of 384 channels in the published
  files) is removed from the reference before its state_dict is taken: the adapter skips its tensors, and
  ``tests/test_vjepa2.py`` loads a file that holds them.
* The encoder-only reference's output is the mean of ``last_hidden_state`` over the tokens: videozoo's
  ``forward`` of a model built with ``num_classes=0``.

The classifiers (``vjepa2_vitl_256``, ``vjepa2_vitg_384``: the SSv2 probes; ``*_diving48``: the Diving-48
probes, which read four layers of the encoder) are the authors' encoder, clip wrapper and
``AttentiveClassifier`` (``PublisherClassifier`` below): transformers' ``VJEPA2ForVideoClassification``
loads the same files but runs their probes otherwise (LayerNorms at 1e-6 where the probes were trained
at 1e-5, the encoder's 22 heads for the ViT-g's where they have 16, the last layer alone for the Diving-48
probes). The ViT-L SSv2 probe is stored at 8x32x32 and 16x48x48, the ViT-L Diving-48 probe too.

    ~/ref-env/bin/python tests/parity/make_fixtures.py vjepa2_vitl_256 vjepa2_vith_256 vjepa2_vitg_256 vjepa2_vitg_384
    cd tests && ~/ref-env/bin/python -m parity.ref_vjepa2      # EXTRA_CASES
    cd tests && ~/ref-env/bin/python -m parity.ref_vjepa2 --diving48
"""

from __future__ import annotations

import os
import re
import sys
from functools import partial

from torch import Tensor, nn
from transformers import VJEPA2Config, VJEPA2ForVideoClassification, VJEPA2Model

from parity.common import Case

# builder -> (hidden_size, num_attention_heads, mlp_ratio), depth 2: the published architectures' shapes.
SMALL = {
    "vjepa2_vitl_256": (64, 2, 4.0),  # head 32: 3 x 10 rotated channels, 2 left
    "vjepa2_vith_256": (96, 2, 4.0),  # head 48: 3 x 16, none left
    "vjepa2_vitg_256": (88, 2, 48 / 11),  # head 44: 3 x 14, 2 left; MLP 384
    "vjepa2_vitg_384": (88, 2, 48 / 11),
}
LABELS = 5


def reference(name: str, crop: int, frames: int, classifier: bool) -> nn.Module:
    hidden, heads, mlp_ratio = SMALL[name]
    config = VJEPA2Config(
        patch_size=16,
        crop_size=crop,
        frames_per_clip=frames,
        tubelet_size=2,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=2,
        mlp_ratio=mlp_ratio,
        num_pooler_layers=3,
        pred_hidden_size=32,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        num_labels=LABELS,
        attn_implementation="eager",
    )
    if classifier:
        model = VJEPA2ForVideoClassification(config)
        model.vjepa2.predictor = None
    else:
        model = VJEPA2Model(config)
        model.predictor = None
    return model


def run_classifier(model: nn.Module, x: Tensor) -> Tensor:
    return model(pixel_values_videos=x.transpose(1, 2)).logits


def run_encoder(model: nn.Module, x: Tensor) -> Tensor:
    return model(pixel_values_videos=x.transpose(1, 2), skip_predictor=True).last_hidden_state.mean(1)


def _case(name: str, frames: int, crop: int, classifier: bool, fixture_name: str | None = None) -> Case:
    hidden, heads, _ = SMALL[name]
    kwargs = {"embed_dim": hidden, "depth": 2, "num_heads": heads, "num_classes": LABELS if classifier else 0}
    return Case(
        factory=partial(reference, name, crop, frames, classifier),
        input_shape=(1, 3, frames, crop, crop),
        kwargs=kwargs,
        run=run_classifier if classifier else run_encoder,
        extra_shapes=[(2, 3, frames, crop, crop), (2, 3, frames // 2, crop, crop)],
        fixture_name=fixture_name,
    )


CASES = {
    "vjepa2_vitl_256": _case("vjepa2_vitl_256", 8, 32, classifier=True),
    "vjepa2_vith_256": _case("vjepa2_vith_256", 8, 32, classifier=False),
    "vjepa2_vitg_256": _case("vjepa2_vitg_256", 8, 32, classifier=False),
    "vjepa2_vitg_384": _case("vjepa2_vitg_384", 8, 48, classifier=True),
}

# The published architectures (transformers' configurations of the facebook/vjepa2-* ports: hidden size,
# blocks, heads, MLP ratio; 174 SSv2 classes for the probes), checked at full depth in the side environment
# only, without a fixture:  cd tests && ~/ref-env/bin/python -m parity.ref_vjepa2 --published [NAME ...]
PUBLISHED = {
    "vjepa2_vitl_256": (1024, 24, 16, 4.0, True),
    "vjepa2_vith_256": (1280, 32, 16, 4.0, False),
    "vjepa2_vitg_256": (1408, 40, 22, 48 / 11, False),
    "vjepa2_vitg_384": (1408, 40, 22, 48 / 11, True),
}


def published_reference(name: str, crop: int, frames: int) -> nn.Module:
    hidden, depth, heads, mlp_ratio, classifier = PUBLISHED[name]
    config = VJEPA2Config(
        crop_size=crop, frames_per_clip=frames, hidden_size=hidden, num_hidden_layers=depth, num_attention_heads=heads,
        mlp_ratio=mlp_ratio, num_labels=174, attn_implementation="eager",
    )  # fmt: skip
    model = VJEPA2ForVideoClassification(config) if classifier else VJEPA2Model(config)
    if classifier:
        model.vjepa2.predictor = None
    else:
        model.predictor = None
    return model


PUBLISHED_CASES = {
    name: Case(
        factory=partial(published_reference, name, 256, 16),
        input_shape=(1, 3, 16, 256, 256),
        kwargs={"num_classes": 174 if classifier else 0},
        run=run_classifier if classifier else run_encoder,
    )
    for name, (*_, classifier) in PUBLISHED.items()
}

# The second clip size of the probe's and the encoder's cases (16 frames of 48x48: another token grid).
EXTRA_CASES = {
    name: _case(name, 16, 48, classifier=name == "vjepa2_vitl_256", fixture_name=f"{name}-16x48x48")
    for name in ("vjepa2_vitl_256", "vjepa2_vith_256")
}



# ----------------------------------------------------------------------------------------------------
# The Diving-48 probes: the authors' code
#
# The published Diving-48 probes (configs/{eval,inference}/{vitl,vitg-384}/diving48.yaml of
# facebookresearch/vjepa2) read four intermediate layers of the frozen encoder: the multilevel wrapper
# (evals/video_classification_frozen/modelcustom/vit_encoder_multiclip_multilevel.py) asks the encoder for the
# outputs of ``out_layers``, each after the encoder's last LayerNorm, and concatenates them along the token
# axis; the probe (src/models/attentive_pooler.py's AttentiveClassifier: 16 heads, LayerNorms at torch's
# default 1e-5) attends over all of them. transformers' VJEPA2ForVideoClassification loads the Hugging Face
# ports of these files but runs the probe on the last layer only (and with the encoder's 22 heads for the
# ViT-g), so it is not their reference: the authors' code is. It is not on PyPI: bring it with the ``fetch``
# tool (github:facebookresearch/vjepa2) and export ``src`` and ``evals`` to a folder outside the repository
# (``VJEPA2_SRC``, default ``/work/scratch-diving/vjepa2``)::
#
#     git --git-dir=<mirror> archive HEAD src evals | tar x -C $VJEPA2_SRC
#
# The fixtures are in the Hugging Face files' layout (a tiny VJEPA2ForVideoClassification's state_dict, as
# the ports hold the publisher's tensors: the encoder converted by convert_vjepa2_to_hf.py, the probe by
# convert_vjepa2_classifier_to_hf.py); ``PublisherClassifier`` maps them back to the authors' key names
# (query, key and value fused into ``qkv``, ``k_proj``/``v_proj`` into ``kv``, ``classifier`` -> ``linear``),
# loads them strictly into the authors' VisionTransformer (RoPE, ``out_layers``), ClipAggregation and
# AttentiveClassifier, and runs one clip (one segment, one view) through them.
#
#     cd tests && VJEPA2_SRC=/work/scratch-diving/vjepa2 ~/ref-env/bin/python -m parity.ref_vjepa2 --diving48

_VJEPA2_SRC = os.environ.get("VJEPA2_SRC", "/work/scratch-diving/vjepa2")

# builder -> (hidden_size, encoder heads, MLP ratio, depth, out_layers, probe heads): the published
# probes' shape at a tiny size. ViT-L reads 4 of its 24 blocks (the last included) with the encoder's 16
# heads; the ViT-g reads 4 of 40 with 16 heads where its encoder has 22 (here 4 probe heads, 2 encoder).
DIVING48_SMALL = {
    "vjepa2_vitl_256_diving48": (64, 2, 4.0, 4, [1, 3], 2),
    "vjepa2_vitg_384_diving48": (88, 2, 48 / 11, 4, [0, 2, 3], 4),
}


def _publisher_modules():
    if _VJEPA2_SRC not in sys.path:
        sys.path.insert(0, _VJEPA2_SRC)
    import src.models.vision_transformer as vit  # the authors' code, side environment only
    from evals.video_classification_frozen.modelcustom import vit_encoder_multiclip as last_layer
    from evals.video_classification_frozen.modelcustom import vit_encoder_multiclip_multilevel as multilevel
    from src.models.attentive_pooler import AttentiveClassifier

    return vit, last_layer.ClipAggregation, multilevel.ClipAggregation, AttentiveClassifier


def _to_publisher(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A Hugging Face VJEPA2ForVideoClassification state_dict as the authors' encoder and classifier."""
    import torch

    encoder, probe = {}, {}
    for key, value in state.items():
        m = re.fullmatch(r"vjepa2\.encoder\.layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)", key)
        if m:
            if m.group(2) == "query":
                prefix = key.rsplit(".query.", 1)[0]
                fused = torch.cat([state[f"{prefix}.{p}.{m.group(3)}"] for p in ("query", "key", "value")])
                encoder[f"blocks.{m.group(1)}.attn.qkv.{m.group(3)}"] = fused
            continue
        m = re.fullmatch(r"pooler\.(self_attention_layers\.\d+\.self_attn|cross_attention_layer\.cross_attn)\.([qkv])_proj\.(weight|bias)", key)
        if m:
            layer, part, kind = m.groups()
            target = layer.replace("self_attention_layers", "blocks").replace("self_attn", "attn")
            target = target.replace("cross_attention_layer", "cross_attention_block").replace("cross_attn", "xattn")
            if "blocks" in target and part == "q":
                probe[f"pooler.{target}.qkv.{kind}"] = torch.cat([state[f"pooler.{layer}.{p}_proj.{kind}"] for p in "qkv"])
            elif "xattn" in target and part == "q":
                probe[f"pooler.{target}.q.{kind}"] = value
            elif "xattn" in target and part == "k":
                probe[f"pooler.{target}.kv.{kind}"] = torch.cat([state[f"pooler.{layer}.{p}_proj.{kind}"] for p in "kv"])
            continue
        for pattern, replacement in (
            (r"vjepa2\.encoder\.embeddings\.patch_embeddings\.proj\.", "patch_embed.proj."),
            (r"vjepa2\.encoder\.layer\.(\d+)\.attention\.proj\.", r"blocks.\1.attn.proj."),
            (r"vjepa2\.encoder\.layer\.(\d+)\.", r"blocks.\1."),
            (r"vjepa2\.encoder\.layernorm\.", "norm."),
        ):
            if re.match(pattern, key):
                encoder[re.sub(pattern, replacement, key)] = value
                break
        else:
            for pattern, replacement in (
                (r"pooler\.self_attention_layers\.(\d+)\.layer_norm(\d)\.", r"pooler.blocks.\1.norm\2."),
                (r"pooler\.self_attention_layers\.(\d+)\.self_attn\.out_proj\.", r"pooler.blocks.\1.attn.proj."),
                (r"pooler\.self_attention_layers\.(\d+)\.mlp\.", r"pooler.blocks.\1.mlp."),
                (r"pooler\.cross_attention_layer\.layer_norm(\d)\.", r"pooler.cross_attention_block.norm\1."),
                (r"pooler\.cross_attention_layer\.mlp\.", "pooler.cross_attention_block.mlp."),
                (r"pooler\.query_tokens", "pooler.query_tokens"),
                (r"classifier\.", "linear."),
            ):
                if re.match(pattern, key):
                    probe[re.sub(pattern, replacement, key)] = value
                    break
            else:
                raise KeyError(f"no rule for {key}")
    return encoder, probe


def _to_huggingface(encoder: dict[str, Tensor], probe: dict[str, Tensor]) -> dict[str, Tensor]:
    """The authors' encoder and classifier state_dicts in the Hugging Face files' layout (``_to_publisher``'s inverse)."""
    state = {}
    for key, value in encoder.items():
        m = re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if m:
            for part, chunk in zip(("query", "key", "value"), value.chunk(3)):
                state[f"vjepa2.encoder.layer.{m.group(1)}.attention.{part}.{m.group(2)}"] = chunk
            continue
        key = re.sub(r"^patch_embed\.", "embeddings.patch_embeddings.", key)
        key = re.sub(r"^blocks\.(\d+)\.attn\.proj\.", r"layer.\1.attention.proj.", key)
        key = re.sub(r"^blocks\.(\d+)\.", r"layer.\1.", key)
        key = re.sub(r"^norm\.", "layernorm.", key)
        state[f"vjepa2.encoder.{key}"] = value
    for key, value in probe.items():
        m = re.fullmatch(r"pooler\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if m:
            for part, chunk in zip("qkv", value.chunk(3)):
                state[f"pooler.self_attention_layers.{m.group(1)}.self_attn.{part}_proj.{m.group(2)}"] = chunk
            continue
        m = re.fullmatch(r"pooler\.cross_attention_block\.xattn\.kv\.(weight|bias)", key)
        if m:
            for part, chunk in zip("kv", value.chunk(2)):
                state[f"pooler.cross_attention_layer.cross_attn.{part}_proj.{m.group(1)}"] = chunk
            continue
        for pattern, replacement in (
            (r"pooler\.blocks\.(\d+)\.norm(\d)\.", r"pooler.self_attention_layers.\1.layer_norm\2."),
            (r"pooler\.blocks\.(\d+)\.attn\.proj\.", r"pooler.self_attention_layers.\1.self_attn.out_proj."),
            (r"pooler\.blocks\.(\d+)\.mlp\.", r"pooler.self_attention_layers.\1.mlp."),
            (r"pooler\.cross_attention_block\.norm(\d)\.", r"pooler.cross_attention_layer.layer_norm\1."),
            (r"pooler\.cross_attention_block\.xattn\.q\.", "pooler.cross_attention_layer.cross_attn.q_proj."),
            (r"pooler\.cross_attention_block\.mlp\.", "pooler.cross_attention_layer.mlp."),
            (r"linear\.", "classifier."),
        ):
            key = re.sub(pattern, replacement, key)
        state[key] = value
    return state


class PublisherClassifier(nn.Module):
    """The authors' V-JEPA 2 classifier: their ``VisionTransformer`` (RoPE) in their ``ClipAggregation`` wrapper
    (``vit_encoder_multiclip``, the last layer: the SSv2 probes; ``vit_encoder_multiclip_multilevel`` with
    ``out_layers``: the Diving-48 probes), and their ``AttentiveClassifier``, run on one clip (one segment, one
    view). Its state_dict is read and written in the Hugging Face files' layout (the fixtures' and the members')."""

    def __init__(
        self, hidden: int, heads: int, mlp_ratio: float, depth: int, out_layers: list[int] | None, probe_heads: int,
        num_classes: int, crop: int, frames: int,
    ) -> None:  # fmt: skip
        super().__init__()
        vit, LastLayer, Multilevel, AttentiveClassifier = _publisher_modules()
        encoder = vit.VisionTransformer(
            img_size=crop, patch_size=16, num_frames=frames, tubelet_size=2, embed_dim=hidden, depth=depth,
            num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
            out_layers=out_layers, uniform_power=True, use_rope=True,
        )  # fmt: skip
        if out_layers is None:
            self.encoder = LastLayer(encoder, tubelet_size=2, max_frames=128, use_pos_embed=False)
        else:
            self.encoder = Multilevel(encoder, tubelet_size=2, max_frames=128, use_pos_embed=False, out_layers=out_layers)
        self.classifier = AttentiveClassifier(embed_dim=hidden, num_heads=probe_heads, depth=4, num_classes=num_classes)

    def state_dict(self, *args, **kwargs) -> dict[str, Tensor]:
        return _to_huggingface(self.encoder.model.state_dict(), self.classifier.state_dict())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        encoder, probe = _to_publisher(state_dict)
        self.encoder.model.load_state_dict(encoder, strict=strict, assign=assign)
        return self.classifier.load_state_dict(probe, strict=strict, assign=assign)

    def forward(self, x: Tensor) -> Tensor:
        [tokens] = self.encoder([[x]])  # one segment, one spatial view
        return self.classifier(tokens)


def _diving48_case(name: str, frames: int, crop: int, fixture_name: str | None = None) -> Case:
    hidden, heads, mlp_ratio, depth, out_layers, probe_heads = DIVING48_SMALL[name]
    return Case(
        factory=partial(PublisherClassifier, hidden, heads, mlp_ratio, depth, out_layers, probe_heads, LABELS, crop, frames),
        input_shape=(1, 3, frames, crop, crop),
        kwargs={
            "embed_dim": hidden,
            "depth": depth,
            "num_heads": heads,
            "num_classes": LABELS,
            "probe_layers": out_layers,
            "probe_heads": probe_heads,
        },
        extra_shapes=[(2, 3, frames, crop, crop), (2, 3, frames // 2, crop, crop), (1, 3, frames, 32, 48)],
        fixture_name=fixture_name,
        weights="DIVING48_FPC32",
    )


DIVING48_CASES = {
    "vjepa2_vitl_256_diving48": _diving48_case("vjepa2_vitl_256_diving48", 8, 32),
    "vjepa2_vitl_256_diving48-16x48x48": _diving48_case(
        "vjepa2_vitl_256_diving48", 16, 48, fixture_name="vjepa2_vitl_256_diving48-16x48x48"
    ),
    "vjepa2_vitg_384_diving48": _diving48_case("vjepa2_vitg_384_diving48", 8, 48),
}
CASES.update({name: DIVING48_CASES[name] for name in ("vjepa2_vitl_256_diving48", "vjepa2_vitg_384_diving48")})

# The SSv2 probes, also the authors' code: the last layer (vit_encoder_multiclip), 16 heads and LayerNorms at
# 1e-5, where transformers' port runs them with LayerNorms at 1e-6 and, for the ViT-g, 22 heads. Tiny: the
# ViT-L's probe with the encoder's heads (16 and 16 published), the ViT-g's with others (16 and 22).
PROBE_SMALL = {"vjepa2_vitl_256": 2, "vjepa2_vitg_384": 4}  # builder -> probe heads (encoder: SMALL's)


def _probe_case(name: str, frames: int, crop: int, fixture_name: str | None = None) -> Case:
    hidden, heads, mlp_ratio = SMALL[name]
    return Case(
        factory=partial(PublisherClassifier, hidden, heads, mlp_ratio, 2, None, PROBE_SMALL[name], LABELS, crop, frames),
        input_shape=(1, 3, frames, crop, crop),
        kwargs={"embed_dim": hidden, "depth": 2, "num_heads": heads, "num_classes": LABELS, "probe_heads": PROBE_SMALL[name]},
        extra_shapes=[(2, 3, frames, crop, crop), (2, 3, frames // 2, crop, crop), (1, 3, frames, 32, 48)],
        fixture_name=fixture_name,
    )


CASES["vjepa2_vitl_256"] = _probe_case("vjepa2_vitl_256", 8, 32)
CASES["vjepa2_vitg_384"] = _probe_case("vjepa2_vitg_384", 8, 48)
EXTRA_CASES["vjepa2_vitl_256"] = _probe_case("vjepa2_vitl_256", 16, 48, fixture_name="vjepa2_vitl_256-16x48x48")
PUBLISHED_CASES.update({
    name: Case(
        factory=partial(PublisherClassifier, hidden, heads, ratio, depth, None, 16, 174, 256, 16),
        input_shape=(1, 3, 16, 256, 256),
        kwargs={"num_classes": 174},
    )
    for name, (hidden, depth, heads, ratio, _) in PUBLISHED.items()
    if name in PROBE_SMALL
})  # fmt: skip

# The published Diving-48 architectures (the builders' defaults: 48 classes, the publisher's out_layers, 16
# probe heads) in the authors' code at a 16x256x256 clip, checked in memory only and run by
# benchmarks/bench_models.py as the reference:
#     cd tests && ~/ref-env/bin/python -m parity.ref_vjepa2 --published vjepa2_vitl_256_diving48
PUBLISHED_CASES.update({
    name: Case(
        factory=partial(PublisherClassifier, hidden, heads, ratio, depth, layers, 16, 48, 256, 16),
        input_shape=(1, 3, 16, 256, 256),
    )
    for name, (hidden, heads, ratio, depth, layers) in {
        "vjepa2_vitl_256_diving48": (1024, 16, 4.0, 24, [17, 19, 21, 23]),
        "vjepa2_vitg_384_diving48": (1408, 22, 48 / 11, 40, [24, 29, 34, 39]),
    }.items()
})  # fmt: skip


if __name__ == "__main__":
    import sys

    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

    if "--diving48" in sys.argv:
        from parity.make_fixtures import family_main

        family_main([a for a in sys.argv[1:] if a != "--diving48"], DIVING48_CASES, {})
        raise SystemExit
    if "--published" in sys.argv:
        from parity.make_fixtures import check_published

        import torch

        torch.set_grad_enabled(False)
        for model_name in [a for a in sys.argv[1:] if not a.startswith("--")] or list(PUBLISHED_CASES):
            check_published(model_name, PUBLISHED_CASES[model_name])
        raise SystemExit
    names = sys.argv[1:] or list(EXTRA_CASES)
    for model_name in names:
        case = EXTRA_CASES[model_name]
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])
