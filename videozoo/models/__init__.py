"""Model families, one file each; importing this package registers every builder."""

from videozoo.models._base import VideoModel
from videozoo.models.resnet import *  # noqa: F403
from videozoo.models import resnet as _resnet

__all__ = ["VideoModel", *_resnet.__all__]
