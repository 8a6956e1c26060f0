"""The contract every videozoo model follows.

``forward(x) == forward_head(forward_features(x))`` on a float clip ``(B, 3, T, H, W)``;
``forward_features`` returns pooled ``(B, num_features)`` features; ``reset_classifier`` swaps the head
for fine-tuning. Input is checked before it reaches a convolution, in TorchScript-compatible code so
that scripted and exported models keep the checks.
"""


from torch import Tensor, nn


class VideoModel(nn.Module):
    """Base class: input validation and the forward split. Subclasses set the attributes below."""

    num_classes: int
    num_features: int
    min_temporal_size: int
    min_size: int
    model_name: str

    def __init__(self, num_classes: int, num_features: int, min_temporal_size: int = 1, min_size: int = 1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes}.")
        self.num_classes = num_classes
        self.num_features = num_features
        self.min_temporal_size = min_temporal_size
        self.min_size = min_size
        self.model_name = type(self).__name__

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
        return self.model_name

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final classification layer with a freshly initialised one for ``num_classes``."""
        raise NotImplementedError


def check_num_classes(num_classes: int) -> None:
    """Shared argument check for ``reset_classifier``."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
