"""Model families, one file each; importing this package registers every builder."""

from videozoo.models._base import VideoModel
from videozoo.models.resnet import *  # noqa: F403
from videozoo.models import resnet as _resnet
from videozoo.models.x3d import *  # noqa: F403
from videozoo.models import x3d as _x3d
from videozoo.models.mvit import *  # noqa: F403
from videozoo.models import mvit as _mvit
from videozoo.models.swin3d import *  # noqa: F403
from videozoo.models import swin3d as _swin3d
from videozoo.models import s3d as _s3d  # before the * import, which rebinds the name s3d to the builder
from videozoo.models.s3d import *  # noqa: F403
from videozoo.models.slowfast import *  # noqa: F403
from videozoo.models import slowfast as _slowfast

__all__ = ["VideoModel", *_resnet.__all__, *_x3d.__all__, *_mvit.__all__, *_swin3d.__all__, *_s3d.__all__, *_slowfast.__all__]
