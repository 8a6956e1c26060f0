r"""Reference fixtures for X-CLIP (transformers' ``XCLIPModel``) and its tokenizer (``CLIPTokenizerFast`` from
``vocab.json`` and ``merges.txt``, as the ``microsoft/xclip-*`` repositories publish them), written into
``fixtures/video_text/``::

    cd tests && ~/ref-env/bin/python -m parity.ref_xclip

The vocabulary is the first ``MERGES`` merges of CLIP's (open_clip's wheel ships the file), as in
``ref_pe_core``; the model a small ``XCLIPConfig`` (2 blocks, widths 64/48, 4 frames of 64 px in 32 px
patches; ``models``: B/32, B/16 and its zero-shot 32-frame form differ only in the patch size and frame count) filled by ``parity.common.fill_value``,
``alpha`` set to 0.5 so that the prompts weigh. Outputs: the normalised video embeddings, the projected
text embeddings (``get_text_features``, not normalised), and ``logits_per_video`` (with the video-specific
prompts) for a batch of 2 clips and the prompts.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import torch
import transformers
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTokenizerFast, XCLIPConfig, XCLIPModel

from parity.common import FIXTURES, fill_value
from parity.ref_pe_core import MERGES, PROMPTS

OUT = FIXTURES / "video_text"
#: ref_pe_core's prompts and one longer than X-CLIP's 77 tokens (cut as CLIPTokenizerFast cuts it)
PROMPTS_77 = [*PROMPTS, "an even longer prompt " + " ".join(["with many many words that go on"] * 14)]
FRAMES, SIZE, PATCH = 4, 64, 32


def write_vocab(tmp: Path) -> CLIPTokenizerFast:
    with gzip.open(default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (OUT / "clip_vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (OUT / "clip_merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return CLIPTokenizerFast(vocab_file=str(OUT / "clip_vocab.json"), merges_file=str(OUT / "clip_merges.txt"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = write_vocab(Path(tmp))
    batch = tokenizer(PROMPTS_77, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    config = XCLIPConfig(
        text_config={"vocab_size": tokenizer.vocab_size + 2, "hidden_size": 48, "intermediate_size": 192,
                     "num_hidden_layers": 2, "num_attention_heads": 2},
        vision_config={"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": SIZE, "patch_size": PATCH, "num_frames": FRAMES, "mit_hidden_size": 32,
                       "mit_intermediate_size": 128, "mit_num_hidden_layers": 1, "mit_num_attention_heads": 8},
        projection_dim=32, prompt_layers=2, prompt_num_attention_heads=8,
    )  # fmt: skip
    model = XCLIPModel(config).eval()
    state = model.state_dict()
    filled = {k: fill_value(k, v.shape, v.dtype) for k, v in state.items()}
    filled["logit_scale"] = torch.tensor(2.5)
    filled["prompts_generator.alpha"] = torch.full_like(filled["prompts_generator.alpha"], 0.5)
    model.load_state_dict(filled, strict=True)
    clip = torch.randn(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(0))  # (B, C, T, H, W)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=clip.transpose(1, 2))
        text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    kwargs = {
        "num_frames": FRAMES, "image_size": SIZE, "patch_size": PATCH, "width": 64, "depth": 2, "num_heads": 2,
        "embed_dim": 32, "vocab_size": config.text_config.vocab_size, "context_length": 77, "text_width": 48,
        "text_depth": 2, "text_heads": 2,
    }  # fmt: skip
    torch.save(
        {
            "model": "xclip_b32", "models": ["xclip_b32", "xclip_b16", "xclip_b16_zero_shot"], "kwargs": kwargs, "keys": list(filled), "shapes": [list(v.shape) for v in filled.values()],
            "dtypes": [str(v.dtype).replace("torch.", "") for v in filled.values()], "logit_scale": 2.5,
            "input_seed": 0, "input_shape": list(clip.shape), "video": out.video_embeds, "text": text,
            "logits": out.logits_per_video, "prompts": PROMPTS_77, "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "versions": {"transformers": str(transformers.__version__), "torch": str(torch.__version__)},
        },
        OUT / "xclip.pt",
    )  # fmt: skip
    print("xclip written", out.video_embeds.shape, text.shape, out.logits_per_video.shape)


if __name__ == "__main__":
    main()
