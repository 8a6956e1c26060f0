r"""Reference cases for V-JEPA 2: Hugging Face's ``VJEPA2ForVideoClassification`` (the attentive probe and
classifier on the encoder) and ``VJEPA2Model`` (the encoder alone), from transformers.

Each reference is built from a small ``VJEPA2Config`` (2 encoder blocks, 2 heads, tubelets 2x16x16) in
the shape of one published architecture: ViT-L's 4x MLPs and ViT-g's 48/11 ones, head widths that leave
2 channels out of the rotary sections (32 and 44) and one that leaves none (48), and the probe's 4
blocks (``num_pooler_layers=3`` self-attention blocks and the cross-attention one). Hugging Face takes
frames as ``(B, T, C, H, W)``; ``run`` transposes our ``(B, C, T, H, W)`` input.

* transformers numbers the tokens' rows and columns with the grid of its configured ``crop_size``;
  each case configures the clip it is run on (square), so its rotary positions are the clip's own, as
  in the publisher's code and in videozoo at every size. The probe's (``vjepa2_vitl_256``) and the
  encoder's (``vjepa2_vith_256``) cases are stored at two clip sizes: 8x32x32 (``CASES``) and 16x48x48
  (``EXTRA_CASES``, fixtures ``<name>-16x48x48``); each also runs at batch 2 and at half the frames in
  the side environment.
* The pre-training predictor (``VJEPA2Model.predictor``, 12 blocks of 384 channels in the published
  files) is removed from the reference before its state_dict is taken: the adapter skips its tensors, and
  ``tests/test_vjepa2.py`` loads a file that holds them.
* The encoder-only reference's output is the mean of ``last_hidden_state`` over the tokens: videozoo's
  ``forward`` of a model built with ``num_classes=0``.

    ~/ref-env/bin/python tests/parity/make_fixtures.py vjepa2_vitl_256 vjepa2_vith_256 vjepa2_vitg_256 vjepa2_vitg_384
    cd tests && ~/ref-env/bin/python -m parity.ref_vjepa2      # EXTRA_CASES
"""

from __future__ import annotations

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


if __name__ == "__main__":
    import sys

    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

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
