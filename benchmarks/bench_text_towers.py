r"""Time the video towers of videozoo's video-text models against the reference implementations, per clip.

    PYTHONPATH=$PWD ~/ref-env/bin/python benchmarks/bench_text_towers.py --models pe_core_b16 xclip_b32 \
        --batch 1 --repeats 15 --threads 2

Run in the side environment (open_clip_torch with timm, transformers). The references:

* ``pe_core_b16``: open_clip's ``PE-Core-B-16`` (``CustomTextCLIP`` with timm's ``vit_pe_core_base_patch16_224``
  tower); a clip's embedding is each frame through ``encode_image``, the frame embeddings averaged and
  normalised, as perception_models' ``CLIP.encode_video`` computes it;
* ``xclip_b32``: transformers' ``XCLIPModel`` in its default configuration (microsoft/xclip-base-patch32's
  architecture); a clip's embedding is its forward's video path, ``get_video_features``' computation (ViT with
  cross-frame messages, projection, multi-frame integration transformer), normalised.

Both networks hold the same weights (the reference's random initialisation, seeded, loaded into ours through
the weights' adapter, so the embeddings are checked equal first), take the same random clip of the published
size (8 frames of 224 x 224) in batches of ``--batch``, under ``torch.inference_mode``, and are timed in one
process, interleaved (reference, videozoo, reference, ...; benchmarks/_timing.py) after one warm-up each.
Prints the median wall time per clip of each and the ratio. The text towers are not timed (a label set is
embedded once). ``--tiny`` builds both at a few blocks of small width on small clips: a check that the script
runs, not a figure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import open_clip
import timm
import torch
import torch.nn.functional as F
import transformers
from _timing import interleaved_medians
from open_clip.model import CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP
from torch import Tensor, nn

import videozoo

#: ``--tiny``: videozoo's keyword arguments, which the reference's configuration mirrors.
TINY = {
    "pe_core_b16": {
        "image_size": 64, "patch_size": 16, "width": 64, "depth": 2, "num_heads": 2, "mlp_dim": 256, "embed_dim": 48,
        "vocab_size": 1000, "context_length": 32, "text_width": 64, "text_depth": 2, "text_heads": 2,
    },
    "xclip_b32": {
        "num_frames": 4, "image_size": 64, "patch_size": 32, "width": 64, "depth": 2, "num_heads": 2, "embed_dim": 32,
        "vocab_size": 1000, "context_length": 77, "text_width": 48, "text_depth": 2, "text_heads": 2,
    },
}  # fmt: skip


def pe_core_reference(tiny: bool) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """open_clip's PE-Core B/16 and its video embedding (frames through ``encode_image``, averaged, normalised)."""
    if tiny:
        k = TINY["pe_core_b16"]
        grid = k["image_size"] // k["patch_size"]
        model = CustomTextCLIP(
            k["embed_dim"],
            CLIPVisionCfg(image_size=k["image_size"], timm_model_name="vit_little_patch16_reg1_gap_256", timm_pool="map", timm_proj=None),
            CLIPTextCfg(context_length=k["context_length"], vocab_size=k["vocab_size"], width=k["text_width"],
                        heads=k["text_heads"], layers=k["text_depth"]),
        )  # fmt: skip
        model.visual.trunk = timm.create_model(
            "vit_pe_core_base_patch16_224", pretrained=False, num_classes=k["embed_dim"], global_pool="map",
            img_size=k["image_size"], embed_dim=k["width"], depth=k["depth"], num_heads=k["num_heads"],
            mlp_ratio=k["mlp_dim"] / k["width"], ref_feat_shape=(grid, grid),
        )  # fmt: skip
    else:
        model = open_clip.create_model("PE-Core-B-16", pretrained=None)

    def embed(clip: Tensor) -> Tensor:
        b, c, t, h, w = clip.shape
        frames = clip.transpose(1, 2).reshape(b * t, c, h, w)
        return F.normalize(model.encode_image(frames).reshape(b, t, -1).mean(dim=1), dim=-1)

    return model.eval(), embed


def xclip_reference(tiny: bool) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """transformers' X-CLIP B/32 and its video embedding (``get_video_features``' computation, normalised)."""
    config = transformers.XCLIPConfig()  # microsoft/xclip-base-patch32's architecture
    if tiny:
        k = TINY["xclip_b32"]
        config = transformers.XCLIPConfig(
            text_config={"vocab_size": k["vocab_size"], "hidden_size": k["text_width"], "intermediate_size": 4 * k["text_width"],
                         "num_hidden_layers": k["text_depth"], "num_attention_heads": k["text_heads"]},
            vision_config={"hidden_size": k["width"], "intermediate_size": 4 * k["width"], "num_hidden_layers": k["depth"],
                           "num_attention_heads": k["num_heads"], "image_size": k["image_size"], "patch_size": k["patch_size"],
                           "num_frames": k["num_frames"], "mit_hidden_size": k["embed_dim"],
                           "mit_intermediate_size": 4 * k["embed_dim"]},
            projection_dim=k["embed_dim"],
        )  # fmt: skip
    model = transformers.XCLIPModel(config)

    def embed(clip: Tensor) -> Tensor:
        # XCLIPModel.forward's video path, which get_video_features is: in transformers 4.57
        # get_video_features calls the integration transformer without return_dict and fails on its tuple.
        b, c, t, h, w = clip.shape
        frames = model.vision_model(pixel_values=clip.transpose(1, 2).reshape(b * t, c, h, w), return_dict=True)
        tokens = model.visual_projection(frames.pooler_output).view(b, t, -1)
        return F.normalize(model.mit(tokens, return_dict=True).pooler_output, dim=-1)

    return model.eval(), embed


REFERENCES = {"pe_core_b16": pe_core_reference, "xclip_b32": xclip_reference}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(REFERENCES), default=list(REFERENCES))
    parser.add_argument("--batch", type=int, default=1, help="clips per call (the time is reported per clip)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--tiny", action="store_true", help="small widths and depths: check that it runs, no figures")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, open_clip {open_clip.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}{', TINY (no figures)' if args.tiny else ''}")  # fmt: skip
    print("| model | clip | reference ms/clip | videozoo ms/clip | reference / videozoo | max relative error |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.models:
        print(compare(name, args.batch, args.repeats, args.tiny), flush=True)


def compare(name: str, batch: int, repeats: int, tiny: bool) -> str:
    """The table row of ``name``: both towers on the same weights and clips, checked, then timed interleaved."""
    torch.manual_seed(0)
    reference, embed = REFERENCES[name](tiny)
    member = videozoo.get_model_weights(name).DEFAULT
    ours = videozoo.get_model(name, **(TINY[name] if tiny else {})).eval()
    ours.load_state_dict(member.adapt_state_dict(reference.state_dict()), strict=True)
    t = ours.num_frames if hasattr(ours, "num_frames") else member.recipe.num_frames
    size = ours.image_size
    clip = torch.randn(batch, 3, t, size, size, generator=torch.Generator().manual_seed(0))
    runs = {"reference": lambda: embed(clip), "videozoo": lambda: ours.encode_video(clip)}
    with torch.inference_mode():
        theirs, mine = (run() for run in runs.values())  # the warm-up
        error = float((mine - theirs).abs().max() / theirs.abs().max())
        med = interleaved_medians(runs, repeats)
    per_clip = {key: value / batch * 1e3 for key, value in med.items()}
    return (
        f"| `{name}` | {t}x{size}x{size} | {per_clip['reference']:.1f} | {per_clip['videozoo']:.1f} "
        f"| {med['reference'] / med['videozoo']:.2f}x | {error:.1e} |"
    )

if __name__ == "__main__":
    main()
