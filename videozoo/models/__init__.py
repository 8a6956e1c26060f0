"""Model families, one file each; importing this package registers every builder."""

from videozoo.models import efficient_x3d, hiera, mvit, resnet, resnet3d, s3d as _s3d, slowfast, swin3d, timesformer, videomae, vivit, vjepa2, x3d
from videozoo.models import pe_core, xclip
from videozoo.models import internvideo2
from videozoo.models._base import VideoModel
from videozoo.models.efficient_x3d import *  # noqa: F403
from videozoo.models.hiera import *  # noqa: F403
from videozoo.models.mvit import *  # noqa: F403
from videozoo.models.resnet import *  # noqa: F403
from videozoo.models.resnet3d import *  # noqa: F403
from videozoo.models.s3d import *  # noqa: F403  (rebinds the name s3d to the builder; the module is _s3d)
from videozoo.models.slowfast import *  # noqa: F403
from videozoo.models.swin3d import *  # noqa: F403
from videozoo.models.timesformer import *  # noqa: F403
from videozoo.models.videomae import *  # noqa: F403
from videozoo.models.vivit import *  # noqa: F403
from videozoo.models.vjepa2 import *  # noqa: F403
from videozoo.models.x3d import *  # noqa: F403
from videozoo.models import detr
from videozoo.models.detr import *  # noqa: F403
from videozoo.models import action_detection
from videozoo.models.action_detection import *  # noqa: F403
from videozoo.models._video_text import VideoTextModel
from videozoo.models.pe_core import *  # noqa: F403
from videozoo.models.xclip import *  # noqa: F403
from videozoo.models.internvideo2 import *  # noqa: F403

__all__ = [
    "VideoModel",
    *resnet.__all__,
    *_s3d.__all__,
    *mvit.__all__,
    *swin3d.__all__,
    *x3d.__all__,
    *efficient_x3d.__all__,
    *slowfast.__all__,
    *hiera.__all__,
    *videomae.__all__,
    *timesformer.__all__,
    *vivit.__all__,
    *vjepa2.__all__,
    *resnet3d.__all__,
    *detr.__all__,
    *action_detection.__all__,
    "VideoTextModel",
    *pe_core.__all__,
    *xclip.__all__,
    *internvideo2.__all__,
]
