r"""Reference fixtures for PE-Core (open_clip's ``CustomTextCLIP`` with timm's ``vit_pe_core_*`` towers) and
CLIP's tokenizer (open_clip's ``SimpleTokenizer``), written into ``fixtures/video_text/``.

Run in the side environment (open_clip_torch, timm, transformers, ftfy)::

    cd tests && ~/ref-env/bin/python -m parity.ref_pe_core

* The tokenizer. CLIP's BPE merges file ships in open_clip's wheel (``bpe_simple_vocab_16e6.txt.gz``).
  Its first ``MERGES`` merges make a smaller, still valid CLIP vocabulary (the 512 byte tokens, the
  merges, ``<|startoftext|>`` and ``<|endoftext|>``, numbered as CLIP numbers them). transformers'
  ``CLIPTokenizerFast`` writes it as ``tokenizer.json``, the file the Hugging Face repositories of the
  PE-Core weights publish, and open_clip's ``SimpleTokenizer`` on the same merges tokenizes the awkward
  prompts (``PROMPTS``): its ids are the reference.
* The models. Each case is one published configuration's layout at a small width and depth: the timm
  tower built by its own factory name with overrides (``embed_dim``, ``depth``, ``num_heads``,
  ``img_size``, ``ref_feat_shape`` at the built grid), the text tower from ``CLIPTextCfg``. Every tensor
  is filled by ``parity.common.fill_value``; the reference outputs are the video embeddings (each frame
  through ``encode_image``, the unnormalised frame embeddings averaged and normalised, as
  perception_models' ``CLIP.encode_video`` and its zero-shot evaluation do), the normalised text
  embeddings of ``PROMPTS`` and the logits ``logit_scale.exp() * video @ text.T``.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import open_clip
import timm
import torch
import torch.nn.functional as F
import transformers
from open_clip.model import CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP
from open_clip.tokenizer import SimpleTokenizer, bytes_to_unicode, default_bpe

from parity.common import FIXTURES, fill_value

OUT = FIXTURES / "video_text"
MERGES = 1000

PROMPTS = [
    "a dog catches a frisbee",
    "Café crème, naïve Ünïcödé",
    "日本語のテキスト",
    "🐶 catches a 🥏!",
    "what?!... (yes) — no; 'quoted' “curly” ‘single’",
    "Tom &amp; Jerry &lt;3",
    "ﬁshing in ｆｕｌｌｗｉｄｔｈ",
    "  multiple   spaces\tand\nnewlines  ",
    "it's they're we'll I'd",
    "route 66 at 12:30, 3.14",
    "cafÃ© mojibake",
    "",
    "a very long prompt " + " ".join(["with many many words that go on"] * 8),
]

# builder -> (timm name, patch, tower width, heads, mlp ratio, class token)
CASES = {
    "pe_core_b16": ("vit_pe_core_base_patch16_224", 16, 64, 2, 4.0, 32),
    "pe_core_l14": ("vit_pe_core_large_patch14_336", 14, 64, 2, 4.0, 32),
    "pe_core_g14": ("vit_pe_core_gigantic_patch14_448", 14, 64, 2, 8960 / 1536, 72),
}
GRID = 3  # patches per side
EMBED = 48
TEXT = {"width": 64, "heads": 2, "layers": 2}


def write_tokenizer(tmp: Path) -> tuple[Path, SimpleTokenizer]:
    """``fixtures/video_text/clip_tokenizer.json`` (the first ``MERGES`` merges) and open_clip's tokenizer on them."""
    with gzip.open(default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")
    small = tmp / "bpe_small.txt.gz"
    with gzip.open(small, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines[: MERGES + 1]))  # no trailing newline: open_clip would read an empty merge
    merges = [tuple(m.split()) for m in lines[1 : MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    fast = transformers.CLIPTokenizerFast(vocab_file=str(tmp / "vocab.json"), merges_file=str(tmp / "merges.txt"))
    fast.save_pretrained(str(tmp / "hf"))
    path = OUT / "clip_tokenizer.json"
    path.write_bytes((tmp / "hf" / "tokenizer.json").read_bytes())
    return path, SimpleTokenizer(bpe_path=str(small))


def build_reference(name: str, vocab_size: int) -> tuple[CustomTextCLIP, dict]:
    timm_name, patch, width, heads, mlp_ratio, context = CASES[name]
    size = GRID * patch
    model = CustomTextCLIP(
        EMBED,
        CLIPVisionCfg(image_size=size, timm_model_name="vit_little_patch16_reg1_gap_256", timm_pool="map", timm_proj=None),
        CLIPTextCfg(context_length=context, vocab_size=vocab_size, **TEXT),
    )
    model.visual.trunk = timm.create_model(
        timm_name, pretrained=False, num_classes=EMBED, global_pool="map", img_size=size, embed_dim=width, depth=2,
        num_heads=heads, mlp_ratio=mlp_ratio, ref_feat_shape=(GRID, GRID),
    )
    ours = {
        "image_size": size, "patch_size": patch, "width": width, "depth": 2, "num_heads": heads,
        "mlp_dim": int(width * mlp_ratio), "embed_dim": EMBED, "context_length": context, "vocab_size": vocab_size,
        "text_width": TEXT["width"], "text_depth": TEXT["layers"], "text_heads": TEXT["heads"],
    }
    return model.eval(), ours


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _, reference_tokenizer = write_tokenizer(Path(tmp))
    vocab_size = reference_tokenizer.vocab_size
    tokens = {ctx: reference_tokenizer(PROMPTS, context_length=ctx) for ctx in (32, 72)}
    torch.save(
        {"prompts": PROMPTS, "tokens": tokens, "merges": MERGES, "vocab_size": vocab_size,
         "versions": {"open_clip": str(open_clip.__version__), "transformers": str(transformers.__version__)}},
        OUT / "clip_tokenizer.pt",
    )  # fmt: skip
    for name in CASES:
        model, ours = build_reference(name, vocab_size)
        state = model.state_dict()
        filled = {k: fill_value(k, v.shape, v.dtype) for k, v in state.items()}
        filled["logit_scale"] = torch.tensor(2.5)
        model.load_state_dict(filled, strict=True)
        size = ours["image_size"]
        clip = torch.randn(2, 3, 3, size, size, generator=torch.Generator().manual_seed(0))  # (B, C, T, H, W)
        context = ours["context_length"]
        with torch.no_grad():
            frames = clip.transpose(1, 2).reshape(-1, 3, size, size)
            video = F.normalize(model.encode_image(frames).reshape(2, 3, -1).mean(dim=1), dim=-1)
            text = model.encode_text(tokens[context], normalize=True)
            logits = model.logit_scale.exp() * video @ text.t()
        torch.save(
            {
                "model": name, "kwargs": ours, "keys": list(filled), "shapes": [list(v.shape) for v in filled.values()],
                "dtypes": [str(v.dtype).replace("torch.", "") for v in filled.values()],
                "logit_scale": 2.5, "input_seed": 0, "input_shape": list(clip.shape), "video": video, "text": text,
                "logits": logits,
                "versions": {"open_clip": str(open_clip.__version__), "timm": str(timm.__version__), "torch": str(torch.__version__)},
            },
            OUT / f"{name}.pt",
        )  # fmt: skip
        print(name, "written", video.shape, text.shape, logits.shape)


if __name__ == "__main__":
    main()
