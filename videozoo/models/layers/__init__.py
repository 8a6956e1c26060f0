"""Layers several families share: generic blocks (:mod:`.blocks`), position embeddings
(:mod:`.pos_embed`, and the rotary ones of :mod:`.rotary`), attentive pooling (:mod:`.attentive`), boxes
(IoU and non-maximum suppression, :mod:`.boxes`) and
the CPU kernel dispatch (:mod:`.kernels`)."""

from videozoo.models.layers.attentive import AttentivePooler, CrossAttention, CrossAttentionBlock
from videozoo.models.layers.blocks import (
    LayerScale,
    Mlp,
    RMSNorm,
    SelfAttention,
    TransformerBlock,
    TubeletEmbed,
    drop_path,
    drop_path_mask,
    drop_path_rates,
    init_conv_bn,
    init_weights,
    log_mean_softmax,
    merge_heads,
    split_heads,
    transformer_blocks,
    window_avg_pool,
)
from videozoo.models.layers.boxes import box_area, box_cxcywh_to_xyxy, box_iou, nms
from videozoo.models.layers.kernels import (
    attention, conv3d_channels_last, conv_bn_folded, fold_batch_norm, linear, onednn_applies, position_mean,
)
from videozoo.models.layers.roi_align import roi_align
from videozoo.models.layers.pos_embed import resize_pos_embed, sinusoid_table
from videozoo.models.layers.rotary import apply_rope, rope_3d_tables, rope_section_dim

__all__ = [
    "AttentivePooler",
    "attention",
    "CrossAttention",
    "CrossAttentionBlock",
    "LayerScale",
    "Mlp",
    "RMSNorm",
    "SelfAttention",
    "TransformerBlock",
    "TubeletEmbed",
    "apply_rope",
    "box_area",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "conv3d_channels_last",
    "conv_bn_folded",
    "drop_path",
    "drop_path_mask",
    "drop_path_rates",
    "fold_batch_norm",
    "init_conv_bn",
    "init_weights",
    "linear",
    "log_mean_softmax",
    "merge_heads",
    "nms",
    "onednn_applies",
    "position_mean",
    "resize_pos_embed",
    "rope_3d_tables",
    "roi_align",
    "rope_section_dim",
    "sinusoid_table",
    "split_heads",
    "transformer_blocks",
    "window_avg_pool",
]
