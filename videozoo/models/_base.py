"""The contract every videozoo model follows (timm's split of the forward pass).

* ``forward(x)`` takes a float clip ``(B, 3, T, H, W)``, checks it, and returns logits
  ``(B, num_classes)``; it is exactly ``forward_head(forward_features(x))``.
* ``forward_features(x)`` returns the backbone's output before any pooling: a feature map
  ``(B, C, T', H', W')``, tokens, or (SlowFast) one map per pathway.
* ``forward_head(features, pre_logits=True)`` pools them into the clip embedding, always
  ``(B, num_features)`` whatever the input size; ``pre_logits=False`` returns the logits.
* ``get_classifier()`` is the final layer, ``reset_classifier(n)`` replaces it for ``n`` classes.

Input is checked before it reaches a convolution, in TorchScript-compatible code so that scripted and
exported models keep the checks.
"""


from torch import Tensor, nn

__all__ = ["VideoModel", "check_num_classes"]


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


def check_num_classes(num_classes: int) -> None:
    """Shared argument check for ``reset_classifier``."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
