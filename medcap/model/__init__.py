"""The captioning model, its lazy training pipeline and batched decoders (TensorFlow; import lazily)."""

from medcap.model.build import (
    CaptionModel,
    InferencePasses,
    build_model,
    compile_model,
    has_grid_attention,
    traced_probs,
)
from medcap.model.decode import Caption, DecodeOptions, beam_decode, greedy_decode
from medcap.model.layers import FeatureScale, GridAttention, LastState, PaddingMask, ZeroAttention, custom_objects
from medcap.model.pipeline import make_pairs_dataset, num_pairs, pairs_for, store_pairs_dataset

__all__ = [
    "Caption",
    "CaptionModel",
    "DecodeOptions",
    "FeatureScale",
    "GridAttention",
    "InferencePasses",
    "LastState",
    "PaddingMask",
    "ZeroAttention",
    "beam_decode",
    "build_model",
    "compile_model",
    "custom_objects",
    "greedy_decode",
    "has_grid_attention",
    "make_pairs_dataset",
    "num_pairs",
    "pairs_for",
    "store_pairs_dataset",
    "traced_probs",
]
