"""The contract every videozoo model follows (timm's split of the forward pass).

* ``forward(x)`` takes a float clip ``(B, 3, T, H, W)``, checks it, and returns logits
  ``(B, num_classes)``; it is exactly ``forward_head(forward_features(x))``.
* ``forward_features(x)`` returns the backbone's output before any pooling: a feature map
  ``(B, C, T', H', W')``, tokens, or (SlowFast) one map per pathway.
* ``forward_head(features, pre_logits=True)`` pools them into the clip embedding, always
  ``(B, num_features)`` whatever the input size; ``pre_logits=False`` returns the logits.
* ``get_classifier()`` is the final layer, ``reset_classifier(n)`` replaces it for ``n`` classes.
* Training hooks, with timm's names: ``no_weight_decay()``, ``num_layers`` and ``layer_index(name)``
  (layer-wise learning-rate decay), ``set_grad_checkpointing()`` and ``forward_intermediates(x)``.

Input is checked before it reaches a convolution, in TorchScript-compatible code so that scripted and
exported models keep the checks.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["FeatureLayer", "VideoModel", "check_num_classes", "crop_pair"]


class FeatureLayer(NamedTuple):
    """One layer of a network, as the training hooks see it: a transformer block or a conv net's stage."""

    #: Prefixes of its parameters' names (``"blocks.3"``, ``"layer2"``; SlowFast's stage: both pathways').
    params: tuple[str, ...]
    #: The modules whose outputs are its features (one; SlowFast's: the Slow and the Fast pathway's stage).
    outputs: tuple[nn.Module, ...]


class VideoModel(nn.Module):
    """Base class: input validation, the forward split and the classifier. Subclasses set the attributes.

    Args:
        num_classes: outputs of the classifier.
        num_features: width of the pooled clip embedding (``forward_head(..., pre_logits=True)``).
        min_temporal_size: fewest frames the network accepts.
        min_size: smallest frame side, in pixels, the network accepts.
    """

    num_classes: int
    num_features: int
    min_temporal_size: int
    min_size: int
    #: Layers between the stem (layer 0) and the head (layer ``num_layers + 1``): see :meth:`feature_layers`.
    num_layers: int
    #: Whether the layers are transformer blocks (layer-wise learning-rate decay, BEiT's and VideoMAE's
    #: fine-tuning recipe, applies) rather than a conv net's residual stages.
    layers_are_blocks: bool = False
    #: Prefixes of the parameter names of the stem (layer 0) and of the head (layer ``num_layers + 1``).
    stem_params: tuple[str, ...] = ("stem",)
    head_params: tuple[str, ...] = ("fc",)
    #: Parameters trained without weight decay (:meth:`no_weight_decay`).
    no_decay_params: tuple[str, ...] = ()
    #: The architecture's name in error messages: the class name, or a finer one (``"MViTv2"``). Not the
    #: registry's name (``"mvit_v2_s"``), which the task layer calls ``model_name``.
    arch_name: str
    #: Dotted name of the final layer (a ``Linear``, or a 1x1x1 ``Conv3d`` where the checkpoints have one).
    classifier_name: str = "fc"

    def __init__(self, num_classes: int, num_features: int, min_temporal_size: int = 1, min_size: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}.")
        self.num_classes = num_classes
        self.num_features = num_features
        self.min_temporal_size = min_temporal_size
        self.min_size = min_size
        self.arch_name = type(self).__name__
        self.grad_checkpointing = False
        # Follows model.to(dtype), so that check_input names a clip of another dtype than the parameters'.
        self.register_buffer("_dtype", torch.empty(0), persistent=False)

    # -- input ---------------------------------------------------------------------------------------

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` naming the expected input when ``x`` cannot be processed."""
        if x.dim() != 5:
            raise ValueError(
                f"{self._name()} expects a clip batch of shape (B, 3, T, H, W); got a tensor with "
                f"{x.dim()} dimensions {list(x.shape)}. For a single clip (3, T, H, W) use x.unsqueeze(0)."
            )
        if x.shape[1] != 3:
            raise ValueError(
                f"{self._name()} expects 3 channels in dimension 1 of (B, 3, T, H, W); got shape {list(x.shape)}. "
                f"weights.transforms() turns (T, C, H, W) frames into (C, T, H, W)."
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{self._name()} expects a floating-point clip; got {x.dtype}. Normalise uint8 frames with "
                f"weights.transforms() first."
            )
        if x.dtype != self._dtype.dtype:
            expected, got = _dtype_name(self._dtype.dtype), _dtype_name(x.dtype)
            cast = "x.float()" if expected == "float32" else f"x.to(torch.{expected})"
            raise ValueError(
                f"{self._name()} expects {expected} clips, the dtype of its parameters; got torch.{got}. Call "
                f"{cast} or model.to(torch.{got}) (under bf16 autocast, float32 clips)."
            )
        if x.shape[2] < self.min_temporal_size:
            raise ValueError(
                f"{self._name()} needs at least {self.min_temporal_size} frames; got T={x.shape[2]} in {list(x.shape)}."
            )
        if x.shape[3] < self.min_size or x.shape[4] < self.min_size:
            raise ValueError(
                f"{self._name()} needs frames of at least {self.min_size}x{self.min_size} pixels; got "
                f"{x.shape[3]}x{x.shape[4]} in {list(x.shape)}."
            )
        self.check_input_grid(x)

    def check_input_grid(self, x: Tensor) -> None:
        """Family-specific checks (patch or window grids); the default accepts any size."""
        pass

    def check_tiling(self, x: Tensor, unit: list[int], what: str, built: list[int]) -> None:
        """``ValueError`` unless the clip's T, H and W are multiples of ``unit`` (T, H, W): the ``what`` the
        network cuts clips into (``"2x16x16 tubelets"``); ``built`` is the (T, H, W) it was built for."""
        if x.shape[2] % unit[0] != 0 or x.shape[3] % unit[1] != 0 or x.shape[4] % unit[2] != 0:
            raise ValueError(
                f"{self._name()} cuts clips into {what}: it accepts clips whose frame count is a multiple of "
                f"{unit[0]} and whose height and width are multiples of {unit[1]} and {unit[2]}, e.g. "
                f"(B, 3, {built[0]}, {built[1]}, {built[2]}) as built; got {list(x.shape)}. Resize and crop with "
                f"weights.transforms()."
            )

    def _name(self) -> str:
        return self.arch_name

    # -- forward -------------------------------------------------------------------------------------

    def forward_features(self, x: Tensor) -> Tensor:
        """The backbone's unpooled output for a checked clip."""
        raise NotImplementedError

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool ``forward_features``' output: the ``(B, num_features)`` embedding, or the logits."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    # -- training ------------------------------------------------------------------------------------

    @torch.jit.unused
    def no_weight_decay(self) -> set[str]:
        """Names of the parameters to train without weight decay beyond biases and norms (position
        embeddings, class tokens, relative position tables: ``no_decay_params``); none for the
        convolutional networks."""
        return set(self.no_decay_params)

    @torch.jit.unused
    def feature_layers(self) -> list[FeatureLayer]:
        """The network's ``num_layers`` layers between stem and head, in order: by default its transformer
        blocks ``blocks.<i>`` (``layers_are_blocks``) or its residual stages ``layer1``, ``layer2``, ..."""
        if self.layers_are_blocks:
            return self.named_layers([f"blocks.{i}" for i in range(self.num_layers)])
        return self.named_layers([f"layer{i}" for i in range(1, self.num_layers + 1)])

    @torch.jit.unused
    def named_layers(self, names: Sequence[str]) -> list[FeatureLayer]:
        """:meth:`feature_layers` of a network whose layers are the submodules ``names`` (``"layer1"``, ...,
        or ``"blocks.0"``, ...), each the parameters under its name, and its output the layer's."""
        return [FeatureLayer((name,), (self.get_submodule(name),)) for name in names]

    @torch.jit.unused
    def layer_index(self, param_name: str) -> int:
        """The layer a parameter belongs to, for layer-wise learning-rate decay: 0 for the stem (patch and
        position embeddings, class token), ``i + 1`` for layer ``i`` of :meth:`feature_layers`,
        ``num_layers + 1`` for the head (final norm and classifier). ``ValueError`` for another name."""

        def within(prefixes: Sequence[str]) -> bool:
            return any(param_name == p or param_name.startswith(p + ".") for p in prefixes)

        if within(self.stem_params):
            return 0
        for i, layer in enumerate(self.feature_layers()):
            if within(layer.params):
                return i + 1
        if within(self.head_params):
            return self.num_layers + 1
        raise ValueError(f"{param_name!r} is not a parameter name of {self._name()}.")

    @torch.jit.unused
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each layer's activations in the backward pass instead of keeping them
        (``torch.utils.checkpoint``), while training: less memory for one more forward pass. Outputs and
        gradients are unchanged, and so are evaluation, TorchScript and ``torch.export``."""
        self.grad_checkpointing = enable

    @torch.jit.unused
    def checkpointed(self, layer: nn.Module, *args: Any) -> Any:
        """``layer(*args)``, through ``torch.utils.checkpoint`` while training with grad checkpointing on.
        Eager only: the families call ``layer(x) if torch.jit.is_scripting() else self.checkpointed(layer, x)``."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(layer, *args, use_reentrant=False)
        return layer(*args)

    @torch.jit.unused
    def run_layers(self, x: Tensor, layers: Sequence[nn.Module]) -> Tensor:
        """``x`` through ``layers`` in turn, each :meth:`checkpointed` (eager only)."""
        for layer in layers:
            x = self.checkpointed(layer, x)
        return x

    @torch.jit.unused
    def forward_intermediates(
        self, x: Tensor, indices: Sequence[int] | None = None
    ) -> tuple[Any, list[Tensor | list[Tensor]]]:
        """``forward_features(x)`` and the features after each layer of :meth:`feature_layers`.

        Args:
            x: a clip batch ``(B, 3, T, H, W)``, checked as by ``forward``.
            indices: which layers' outputs to return (negative: from the last); ``None``: all.

        Each intermediate is the layer's output as the network passes it on: a map ``(B, C, T', H', W')``
        (the convolutional networks; SlowFast: ``[slow, fast]``, before the lateral connection), tokens
        ``(B, N, C)`` (VideoMAE, ViViT, TimeSformer, MViT: the class token first where there is one;
        Hiera: in its unrolled order, one token per mask unit after the last) or ``(B, T', H', W', C)``
        (Swin3D). The first returned value is exactly ``forward_features(x)``.
        """
        self.check_input(x)
        layers = self.feature_layers()
        wanted = list(range(len(layers))) if indices is None else [range(len(layers))[i] for i in indices]
        outputs: dict[tuple[int, int], Tensor] = {}

        def keep(key: tuple[int, int], module: nn.Module, args: Any, output: Tensor) -> None:
            outputs[key] = output

        handles = [
            module.register_forward_hook(partial(keep, (i, j)))
            for i in set(wanted)
            for j, module in enumerate(layers[i].outputs)
        ]
        try:
            final = self.forward_features(x)
        finally:
            for handle in handles:
                handle.remove()
        out: list[Tensor | list[Tensor]] = []
        for i in wanted:
            maps = [outputs[(i, j)] for j in range(len(layers[i].outputs))]
            out.append(maps[0] if len(maps) == 1 else maps)
        return final, out

    # -- classifier ----------------------------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        """The final layer: ``num_features`` inputs, ``num_classes`` outputs."""
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer with a freshly initialised one for ``num_classes`` (for fine-tuning)."""
        check_num_classes(num_classes)
        old = self.get_classifier()
        weight = old.weight
        assert isinstance(weight, Tensor)
        factory = {"device": weight.device, "dtype": weight.dtype}
        if isinstance(old, nn.Conv3d):
            new: nn.Module = nn.Conv3d(self.num_features, num_classes, kernel_size=1, **factory)
        else:
            new = nn.Linear(self.num_features, num_classes, **factory)
        self.init_classifier(new)
        self.set_submodule(self.classifier_name, new)
        self.num_classes = num_classes

    def init_classifier(self, layer: nn.Module) -> None:
        """The family's initialisation of a new classifier (PySlowFast's: weights N(0, 0.01), bias 0)."""
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)


def crop_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of a builder's ``crop_size``: one value for square frames, or two."""
    if isinstance(size, int):
        return size, size
    values = tuple(int(s) for s in size)
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise ValueError(f"crop_size takes one or two values (H, W), got {size!r}.")
    return values[0], values[1]


def check_num_classes(num_classes: int) -> None:
    """Shared argument check for ``reset_classifier``."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")


def _dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32``, ..., in TorchScript too (where a dtype formats as a number)."""
    for name, known in (("float32", torch.float32), ("float64", torch.float64), ("float16", torch.float16)):
        if dtype == known:
            return name
    if dtype == torch.bfloat16:
        return "bfloat16"
    return str(dtype).replace("torch.", "")
