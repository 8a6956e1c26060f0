"""The contract of the video-text models (task ``video_text``): a video tower, a text tower, one space.

A :class:`VideoTextModel` is a :class:`~videozoo.models.VideoModel` whose "classifier" is a set of
texts. Its members:

* ``encode_video(clip)`` -> ``(B, D)`` and ``encode_text(texts)`` -> ``(N, D)``, both L2-normalised, in
  the shared space of width ``D = embed_dim``;
* ``logit_scale``: the learned temperature, as published (its log; similarities are multiplied by
  ``logit_scale.exp()``);
* ``set_labels(labels, template=None)``: after it, ``forward(clip)`` returns ``(B, len(labels))`` logits,
  the scaled similarities of the clip with each label's text embedding, and ``categories`` are the labels.
  Each label is written into the publisher's prompt templates (``templates``), each prompt embedded, the
  embeddings of a label's prompts averaged and normalised again (the zero-shot protocol of CLIP and its
  descendants). Without labels, ``forward`` raises a ``ValueError`` that says to set them.

The classifier contract holds where it applies, so that extract, timeline and search work unchanged:
``forward_features(x)`` is the per-frame (or per-clip) output of the video tower, and
``forward_head(f, pre_logits=True)`` the normalised video embedding ``(B, D)``; the input is checked as
every model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models._base import VideoModel
from videozoo.zoo.tokenizer import ClipTokenizer

__all__ = ["VideoTextModel", "check_labels", "prompts_for"]


def check_labels(labels: Sequence[str]) -> list[str]:
    """The labels, stripped; ``ValueError`` for an empty list, an empty label or a label given twice
    (``TypeError`` for one string or a label that is not a string)."""
    if isinstance(labels, str):
        raise TypeError(f"labels must be a list of strings, not one string ({labels!r}); e.g. [{labels!r}].")
    cleaned = []
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise TypeError(f"Labels must be strings; got {type(label).__name__} at position {i}.")
        label = label.strip()
        if not label:
            raise ValueError(f"Label {i + 1} is empty; every label needs some text.")
        cleaned.append(label)
    if not cleaned:
        raise ValueError("The label list is empty; give at least one label (two or more to rank them).")
    seen: dict[str, int] = {}
    for i, label in enumerate(cleaned):
        if label in seen:
            raise ValueError(
                f"The label {label!r} is given twice (labels {seen[label] + 1} and {i + 1}); give each label once."
            )
        seen[label] = i
    return cleaned


def prompts_for(label: str, templates: Sequence[str]) -> list[str]:
    """``label`` written into each template (``"{}"`` or ``"{c}"`` marks where it goes)."""
    return [t.replace("{c}", label).replace("{}", label) for t in templates]


class VideoTextModel(VideoModel):
    """Base of the video-text models. Subclasses build ``text`` and the video tower and implement
    :meth:`forward_features` and :meth:`encode_tokens`.

    Args:
        embed_dim: width ``D`` of the shared video-text space.
        context_length: tokens per prompt of the text tower.
        templates: the publisher's prompt templates for zero-shot classification.
    """

    head_params = ("logit_scale",)

    def __init__(
        self, embed_dim: int, context_length: int, templates: Sequence[str] = ("{}",), min_temporal_size: int = 1,
        min_size: int = 1,
    ) -> None:  # fmt: skip
        super().__init__(num_classes=1, num_features=embed_dim, min_temporal_size=min_temporal_size, min_size=min_size)
        self.num_classes = 0  # until set_labels
        self.embed_dim = embed_dim
        self.context_length = context_length
        self.templates: tuple[str, ...] = tuple(templates)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))
        self.tokenizer: ClipTokenizer | None = None
        self.categories: list[str] = []
        self.register_buffer("label_embeddings", torch.empty(0, embed_dim), persistent=False)
        self._label_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], Tensor] = {}

    # -- the text side -------------------------------------------------------------------------------

    def set_tokenizer(self, tokenizer: ClipTokenizer) -> None:
        """The tokenizer ``encode_text`` uses (builders with weights set the publisher's)."""
        if tokenizer.context_length != self.context_length:
            raise ValueError(
                f"The tokenizer gives {tokenizer.context_length} tokens per prompt; {self._name()}'s text tower "
                f"takes {self.context_length}."
            )
        self.tokenizer = tokenizer
        self._label_cache.clear()

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """The text tower on token ids ``(N, context_length)``: ``(N, D)``, not normalised."""
        raise NotImplementedError

    @torch.jit.unused
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``(N, D)`` L2-normalised embeddings of the prompts ``texts`` (used as given: no template)."""
        if self.tokenizer is None:
            raise ValueError(
                f"{self._name()} has no tokenizer: build it with weights (the publisher's tokenizer comes with "
                f"them), or call model.set_tokenizer(videozoo.zoo.tokenizer.ClipTokenizer(path, "
                f"{self.context_length}))."
            )
        tokens = self.tokenizer(list(texts)).to(self.logit_scale.device)
        return F.normalize(self.encode_tokens(tokens), dim=-1)

    @torch.jit.unused
    def embed_labels(self, labels: Sequence[str], template: str | Sequence[str] | None = None) -> Tensor:
        """``(len(labels), D)``: each label's prompts embedded, averaged and normalised again; cached per
        labels and templates (for this model, until its tokenizer changes).

        Args:
            template: a prompt template (``"a video of {}."``) or several; ``None``: the publisher's
                (:attr:`templates`); ``"{}"``: the labels as they are.
        """
        labels = check_labels(labels)
        templates = self._templates(template)
        key = (tuple(labels), templates)
        cached = self._label_cache.get(key)
        if cached is not None and cached.device == self.logit_scale.device and cached.dtype == self.logit_scale.dtype:
            return cached
        with torch.no_grad():
            rows = []
            for label in labels:
                prompts = self.encode_text(prompts_for(label, templates))
                rows.append(F.normalize(prompts.mean(dim=0), dim=-1))
            embeddings = torch.stack(rows)
        self._label_cache[key] = embeddings
        return embeddings

    @staticmethod
    def _templates(template: str | Sequence[str] | None) -> tuple[str, ...]:
        if template is None:
            return ()
        templates = (template,) if isinstance(template, str) else tuple(template)
        if not templates:
            raise ValueError("template: give at least one prompt template, e.g. 'a video of {}.'.")
        for t in templates:
            if "{}" not in t and "{c}" not in t:
                raise ValueError(f"The template {t!r} has no '{{}}' where the label goes, e.g. 'a video of {{}}.'.")
        return templates

    @torch.jit.unused
    def set_labels(self, labels: Sequence[str], template: str | Sequence[str] | None = None) -> None:
        """Classify into ``labels`` from now on: ``forward`` returns ``(B, len(labels))`` scaled similarities.

        Args:
            labels: the class names, each once (a long one is cut to the text context with a warning).
            template: prompt template(s) with ``{}`` for the label; ``None``: the publisher's.
        """
        labels = check_labels(labels)
        templates = self._templates(template) or self.templates
        self.label_embeddings = self.embed_labels(labels, templates)
        self.categories = labels
        self.num_classes = len(labels)

    # -- the video side ------------------------------------------------------------------------------

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """``x`` is :meth:`forward_features`' ``(B, T', D)`` per-frame (or per-clip) embeddings: their mean,
        normalised, is the video embedding; the logits are its scaled similarity with each label."""
        video = F.normalize(x.mean(dim=1), dim=-1)
        if pre_logits:
            return video
        if self.label_embeddings.shape[0] == 0:
            raise ValueError(
                "This video-text model has no labels to classify into: call model.set_labels([...]) (or pass "
                "labels=[...] to videozoo.predict, --labels on the command line) first."
            )
        return self.logit_scale.exp() * video @ self.label_embeddings.to(video.dtype).t()

    def encode_video(self, x: Tensor) -> Tensor:
        """``(B, D)`` L2-normalised embeddings of the clips ``x`` ``(B, 3, T, H, W)``."""
        self.check_input(x)
        return self.forward_head(self.forward_features(x), pre_logits=True)

    # -- classifier hooks that do not apply ------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        raise ValueError(f"{self._name()} classifies with text embeddings (set_labels), not a final layer.")

    def reset_classifier(self, num_classes: int) -> None:
        raise ValueError(
            f"{self._name()} has no classifier layer to reset: call set_labels([...]) to classify into new labels."
        )
