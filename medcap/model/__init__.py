"""The captioning model, its lazy training pipeline and batched decoders (TensorFlow; import lazily)."""

from medcap.model.build import (
    CaptionModel,
    InferencePasses,
    build_model,
    compile_model,
    has_grid_attention,
    traced_probs,
)
from medcap.model.decoding import Caption, CaptionMemory, DecodeOptions, beam_search, decode, greedy_search
from medcap.model.layers import FeatureScale, GridAttention, LastState, PaddingMask, ZeroAttention, custom_objects
from medcap.model.pipeline import make_pairs_dataset, num_pairs, pairs_for, store_pairs_dataset

__all__ = [
    "Caption",
    "CaptionMemory",
    "CaptionModel",
    "DecodeOptions",
    "FeatureScale",
    "GridAttention",
    "InferencePasses",
    "LastState",
    "PaddingMask",
    "ZeroAttention",
    "beam_search",
    "build_model",
    "compile_model",
    "custom_objects",
    "decode",
    "greedy_search",
    "has_grid_attention",
    "make_pairs_dataset",
    "num_pairs",
    "pairs_for",
    "store_pairs_dataset",
    "traced_probs",
]
