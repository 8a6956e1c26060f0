"""Text into token ids, as the publisher of a video-text model tokenizes it.

:class:`ClipTokenizer` reads the publisher's own ``tokenizer.json`` (the Hugging Face ``tokenizers``
format: CLIP's byte-level BPE with its vocabulary and merges) with the ``tokenizers`` library, and adds
what the publisher's reference tokenizer does around the BPE (open_clip's ``SimpleTokenizer``):

1. clean the text: ``ftfy.fix_text`` (mojibake, curly quotes, ligatures, full-width forms), HTML entities
   unescaped twice, runs of whitespace made one space, the ends stripped, lower case;
2. ``<|startoftext|>``, the BPE tokens, ``<|endoftext|>``;
3. a fixed context: longer prompts are cut to ``context_length`` tokens whose last is ``<|endoftext|>``
   (with a warning naming the prompt), shorter ones padded with zeros.

Both libraries are the optional ``text`` extra: ``pip install "videozoo[text]"``.
"""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["ClipTokenizer", "TruncationWarning", "require_text_extra"]

_INSTALL = 'pip install "videozoo[text]"'


class TruncationWarning(UserWarning):
    """A prompt longer than the text tower's context was cut, as the publisher's tokenizer cuts it."""


def require_text_extra() -> tuple[Any, Any]:
    """``(tokenizers, ftfy)``; an ``ImportError`` naming the extra to install when either is missing."""
    try:
        import ftfy
        import tokenizers
    except ImportError as e:
        raise ImportError(
            f"Video-text models need the tokenizers and ftfy packages to read text ({e.name} is not installed): "
            f"{_INSTALL}"
        ) from None
    return tokenizers, ftfy


class ClipTokenizer:
    """CLIP's tokenizer, read from a publisher's ``tokenizer.json``.

    Args:
        path: the publisher's ``tokenizer.json``.
        context_length: tokens per prompt, as the text tower was trained (PE-Core B and L: 32, G: 72).
        clean: open_clip's cleaning first (step 1 above: ftfy, HTML entities); ``False`` for publishers whose
            reference is Hugging Face's CLIP tokenizer (its own normaliser only: NFC, whitespace, lower case).
    """

    def __init__(self, path: str | os.PathLike[str], context_length: int, clean: bool = True) -> None:
        tokenizers, _ = require_text_extra()
        self.path = Path(path)
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(self.path))
        except Exception as e:  # noqa: BLE001  (the library raises a bare Exception for unreadable files)
            raise ValueError(f"{self.path}: not a tokenizer.json the tokenizers library can read ({e}).") from None
        self._setup(tokenizer, context_length, clean)

    @classmethod
    def from_vocab_and_merges(
        cls, vocab: str | os.PathLike[str], merges: str | os.PathLike[str], context_length: int
    ) -> ClipTokenizer:
        """CLIP's tokenizer from a publisher's ``vocab.json`` and ``merges.txt`` (the slow tokenizer's files),
        put together with the ``tokenizers`` library as Hugging Face's ``CLIPTokenizerFast`` puts them (NFC,
        whitespace runs to one space, lower case; CLIP's word pattern; byte-level BPE with ``</w>``), without
        open_clip's cleaning (``clean=False``)."""
        tokenizers, _ = require_text_extra()
        from tokenizers import Regex, models, normalizers, pre_tokenizers

        try:
            bpe = models.BPE.from_file(
                str(vocab), str(merges), continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False,
                unk_token="<|endoftext|>",
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001  (the library raises a bare Exception for unreadable files)
            raise ValueError(f"{vocab}, {merges}: not a vocab.json and merges.txt the tokenizers library can read ({e}).") from None
        tokenizer = tokenizers.Tokenizer(bpe)
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        words = Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(words, behavior="removed", invert=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
        self = cls.__new__(cls)
        self.path = Path(vocab)
        self._setup(tokenizer, context_length, clean=False)
        return self

    def _setup(self, tokenizer: Any, context_length: int, clean: bool) -> None:
        _, ftfy = require_text_extra()
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._fix_text = ftfy.fix_text
        self.cleans = clean
        start, end = tokenizer.token_to_id("<|startoftext|>"), tokenizer.token_to_id("<|endoftext|>")
        if start is None or end is None:
            raise ValueError(f"{self.path}: a CLIP tokenizer has the tokens <|startoftext|> and <|endoftext|>.")
        self.sot_token_id: int = start
        self.eot_token_id: int = end
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2 (start and end of text), got {context_length}.")
        self.context_length = context_length
        self.vocab_size: int = tokenizer.get_vocab_size()

    def clean(self, text: str) -> str:
        """The text as the BPE sees it (step 1 above; with ``clean=False`` the library's normaliser only)."""
        if not self.cleans:
            return text
        text = html.unescape(html.unescape(self._fix_text(text))).strip()
        return " ".join(text.split()).lower()

    def encode(self, text: str) -> list[int]:
        """The BPE ids of ``text``, without start, end or padding."""
        return self._tokenizer.encode(self.clean(text), add_special_tokens=False).ids

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """``(N, context_length)`` int64 token ids of the prompts ``texts``."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Prompts must be strings; got {type(text).__name__} at position {i}.")
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > self.context_length:
                warnings.warn(
                    f"The prompt {text!r} has {len(ids)} tokens, more than the text tower's {self.context_length}; "
                    f"it was cut to its first {self.context_length - 2} tokens, as the publisher's tokenizer does.",
                    TruncationWarning,
                    stacklevel=2,
                )
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = torch.tensor(ids)
        return out
