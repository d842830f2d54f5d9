"""Caption decoding: options, composable constraint processors, the caption memory and the searches.

    options.py     DecodeOptions: one frozen record, field names as RunConfig's (from_config, replace)
    processors.py  constraints as small processors over next-word scores, built once per decode call
    memory.py      the caption memory of retrieval-aware decoding, indexed by image id
    captions.py    Caption, feature batches
    search.py      greedy and beam search (the beam scorer keeps the length penalty), `decode` picks one
"""

from medcap.model.decoding.captions import Caption
from medcap.model.decoding.memory import MEMORY_ORDER, CaptionMemory, build_memory, memory_next_word
from medcap.model.decoding.options import DecodeOptions
from medcap.model.decoding.processors import (
    BANNED,
    BanTokens,
    BlockAdjacentRepeat,
    BlockRepeatedNgrams,
    Hypotheses,
    MemoryMix,
    MinLength,
    Processor,
    Processors,
    build_processors,
)
from medcap.model.decoding.search import beam_search, decode, gnmt_length_penalty, greedy_search

__all__ = [
    "BANNED",
    "MEMORY_ORDER",
    "BanTokens",
    "BlockAdjacentRepeat",
    "BlockRepeatedNgrams",
    "Caption",
    "CaptionMemory",
    "DecodeOptions",
    "Hypotheses",
    "MemoryMix",
    "MinLength",
    "Processor",
    "Processors",
    "beam_search",
    "build_memory",
    "build_processors",
    "decode",
    "gnmt_length_penalty",
    "greedy_search",
    "memory_next_word",
]
