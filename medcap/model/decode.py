"""Batched greedy and beam-search caption decoding with per-word attention maps.

Many images are decoded at once: the image side (global encoding, projected grid regions) is
computed once per image, then each step runs one compiled pass of the prefix side over every
unfinished caption (beam) of a batch. `<pad>`, `<start>` and `<unk>` are never generated. A caption stops at
`<end>` or after `max_words` words. Per generated word two 7x7 maps are kept: `attention`, the weights of
the last prefix position (the one whose attended context the default decoder reads to choose the word),
and `attention_mean`, the mean over all prefix positions (what the pooled context averages).
Scores are sums of log-probabilities of every generated token, `<end>` included.

`DecodeOptions` adds what the paper leaves open: a GNMT length penalty for beam search, a minimum
length, no back-to-back word repeats, no repeated n-gram, and retrieval-aware decoding (a caption memory
of the nearest training captions mixed into the next-word distribution, `medcap.model.retrieval`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medcap.model.build import InferencePasses, has_grid_attention
from medcap.model.layers import GRID_CHANNELS, GRID_REGIONS
from medcap.model.retrieval import CaptionMemory, ban_adjacent, ban_repeats, memory_next_word, mix

log = logging.getLogger(__name__)

_NEG = -1e30


@dataclass
class Caption:
    """One decoded caption."""

    words: list[str]
    token_ids: list[int]  # ids of `words` (no <start>/<end>)
    probs: list[float]  # model probability of each generated word
    attention: np.ndarray | None  # (n_words, 7, 7) last prefix position's map; None for attention="self"
    text: str  # " ".join(words)
    score: float  # sum log-prob of the generated tokens (<end> included when reached)
    attention_mean: np.ndarray | None = None  # (n_words, 7, 7) mean over the prefix positions


@dataclass(frozen=True)
class DecodeOptions:
    """How captions are searched. The defaults reproduce plain greedy / beam search.

    length_penalty: GNMT alpha; beams are ranked by score / ((5 + n) / 6) ** alpha, n = generated tokens
        (0: the raw sum of log-probabilities, which favours short captions).
    min_words: `<end>` is forbidden before this many words.
    block_adjacent: forbid repeating the previous word ("right right").
    no_repeat_ngram: forbid completing an n-gram already in the caption (0: off; >= 2).
    memory / memory_lambda / memory_order: retrieval-aware decoding; p = (1 - lam) p_model + lam p_memory,
        where p_memory continues the last `memory_order` words as the nearest training captions do.
        `memory` rows are aligned with the images being decoded.
    """

    max_words: int = 20
    length_penalty: float = 0.0
    min_words: int = 0
    block_adjacent: bool = False
    no_repeat_ngram: int = 0
    memory: CaptionMemory | None = None
    memory_lambda: float = 0.0
    memory_order: int = 2

    def describe(self) -> dict[str, Any]:
        """JSON-friendly record of the options (for metrics.json)."""
        return {"max_words": self.max_words, "length_penalty": self.length_penalty, "min_words": self.min_words,
                "block_adjacent": self.block_adjacent, "no_repeat_ngram": self.no_repeat_ngram,
                "memory_lambda": self.memory_lambda if self.memory is not None else 0.0,
                "memory_k": int(self.memory.neighbours.shape[1]) if self.memory is not None else 0,
                "memory_order": self.memory_order}


def gnmt_length_penalty(n_tokens: np.ndarray, alpha: float) -> np.ndarray:
    """((5 + n) / 6) ** alpha (Wu et al. 2016); 1 when alpha is 0."""
    return ((5.0 + np.asarray(n_tokens, dtype=np.float64)) / 6.0) ** float(alpha)


def _adjust(probs: np.ndarray, opts: DecodeOptions, rows: np.ndarray, generated: np.ndarray,
            n_generated: np.ndarray, banned: list[int], end_id: int) -> np.ndarray:
    """The next-word distribution after memory mixing, with forbidden words set to -1 (a, V)."""
    out = probs.astype(np.float64)  # (a, V)
    if opts.memory is not None and opts.memory_lambda > 0:
        p_mem = memory_next_word(opts.memory, rows, generated, n_generated, out.shape[1], end_id, opts.memory_order)
        out = mix(out, p_mem, opts.memory_lambda)
    out[:, banned] = -1.0
    if opts.block_adjacent:
        ban_adjacent(out, generated, n_generated, -1.0)
    if opts.no_repeat_ngram >= 2:
        ban_repeats(out, generated, n_generated, opts.no_repeat_ngram, -1.0)
    if opts.min_words > 0:
        out[np.asarray(n_generated) < opts.min_words, end_id] = -1.0
    return out


@dataclass
class _Passes:
    """Compiled inference passes: `encode` once per image batch, `step` once per generated word."""

    encode: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
    step: Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]  # -> probs (B, V), mean map (B, 49), last (B, 49)


def _compiled_passes(passes: InferencePasses) -> _Passes:
    """A `build_model` model's own encode / step sub-models, compiled once."""
    encode_model, step_model = passes.encode, passes.step

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, GRID_REGIONS, GRID_CHANNELS], tf.float32),
        ]
    )
    def encode_tf(g: tf.Tensor, grid: tf.Tensor) -> list[tf.Tensor]:
        out = encode_model([g, grid], training=False)  # [image (B, H), keys (B, 49, A)] or [image (B, H)]
        return list(out) if isinstance(out, list | tuple) else [out]

    @tf.function(reduce_retracing=True)
    def step(*args: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        out = step_model(list(args), training=False)
        probs = tf.cast(out["probs"], tf.float32)  # (B, V)
        att = tf.cast(out["attention"], tf.float32)  # (B, T, 49); decoding prefixes carry no padding
        return probs, tf.reduce_mean(att, axis=1), att[:, -1, :]  # (B, V), (B, 49), (B, 49)

    def encode(g: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(t.numpy() for t in encode_tf(g, grid))  # per-image arrays (b, ...)

    return _Passes(encode=encode, step=step)


def _callable_passes(model: Callable[..., Any]) -> _Passes:
    """A plain callable taking the input dict (hand-written test models): the whole model runs at every step."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, GRID_REGIONS, GRID_CHANNELS], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
        ]
    )
    def step(g: tf.Tensor, grid: tf.Tensor, prefix: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        out = model({"global": g, "grid": grid, "prefix": prefix}, training=False)
        probs = tf.cast(out["probs"], tf.float32)  # (B, V)
        att = tf.cast(out["attention"], tf.float32)  # (B, T, 49)
        return probs, tf.reduce_mean(att, axis=1), att[:, -1, :]  # (B, V), (B, 49), (B, 49)

    return _Passes(encode=lambda g, grid: (g, grid), step=step)


def _passes(model: Any) -> _Passes:
    """The model's compiled inference passes (built once and kept on the model).

    A Keras model must come from `build_model` (it carries its `passes`); any other callable taking
    {"global", "grid", "prefix"} and returning {"probs", "attention"} runs whole at every step.
    """
    cached = getattr(model, "_medcap_compiled_passes", None)
    if cached is not None:
        return cached
    own = getattr(model, "passes", None)
    if isinstance(own, InferencePasses):
        passes = _compiled_passes(own)
    elif isinstance(model, keras.Model):
        raise TypeError(f"model {model.name!r} has no inference passes: build it with medcap.model.build_model")
    elif callable(model):
        passes = _callable_passes(model)
    else:
        raise TypeError(f"cannot decode with a {type(model).__name__}: not a model")
    with contextlib.suppress(AttributeError):  # objects that refuse new attributes: no caching
        model._medcap_compiled_passes = passes
    return passes


def _check_inputs(global_feats: Any, grid_feats: Any) -> int:
    """Validate shapes (arrays or memmaps stay unread); return N."""
    shape = tuple(np.shape(global_feats))
    if len(shape) != 2:
        raise ValueError(f"global features must be (N, D), got shape {shape}")
    n = shape[0]
    if grid_feats is not None:
        gshape = tuple(np.shape(grid_feats))
        if gshape[1:] not in ((7, 7, GRID_CHANNELS), (GRID_REGIONS, GRID_CHANNELS)) or gshape[0] != n:
            raise ValueError(f"grid features must be (N={n}, 7, 7, 512), got shape {gshape}")
    return n


def _batch(global_feats: Any, grid_feats: Any, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows lo:hi as float32 (only this batch is converted): (b, D), (b, 49, 512)."""
    g = np.asarray(global_feats[lo:hi], dtype=np.float32)  # (b, D)
    if grid_feats is None:
        return g, np.zeros((len(g), GRID_REGIONS, GRID_CHANNELS), dtype=np.float32)  # (b, 49, 512)
    grid = np.asarray(grid_feats[lo:hi], dtype=np.float32).reshape(len(g), GRID_REGIONS, GRID_CHANNELS)
    return g, grid  # (b, D), (b, 49, 512)


def _banned(vocab: Any) -> list[int]:
    return sorted({int(vocab.pad_id), int(vocab.start_id), int(vocab.unk_id)})


def _make_caption(vocab: Any, ids: list[int], probs: list[float], last: np.ndarray | None,
                  mean: np.ndarray | None, score: float) -> Caption:
    words = [vocab.words[i] for i in ids]

    def grid(att: np.ndarray | None) -> np.ndarray | None:
        return None if att is None else np.asarray(att, dtype=np.float32).reshape(len(ids), 7, 7)  # (n, 7, 7)

    return Caption(words=words, token_ids=list(ids), probs=list(probs), attention=grid(last), text=" ".join(words),
                   score=float(score), attention_mean=grid(mean))


def greedy_decode(
    model: Any,
    global_feats: Any,
    grid_feats: Any,
    vocab: Any,
    max_words: int = 20,
    batch_size: int = 256,
    stop_at_end: bool = True,
    options: DecodeOptions | None = None,
) -> list[Caption]:
    """Greedy captions for N images (global (N, D), grid (N, 7, 7, 512) or None for attention="self").

    `stop_at_end=False` forbids `<end>` and always generates `max_words` words (benchmarks). `options`
    (its `max_words` wins over the argument) adds constraints and retrieval-aware decoding.
    """
    opts = options or DecodeOptions(max_words=max_words)
    max_words = opts.max_words
    n_images = _check_inputs(global_feats, grid_feats)
    passes = _passes(model)
    with_maps = has_grid_attention(model)
    banned = _banned(vocab) + ([] if stop_at_end else [int(vocab.end_id)])
    end_id = int(vocab.end_id)
    out: list[Caption] = []
    for lo in range(0, n_images, batch_size):
        enc = passes.encode(*_batch(global_feats, grid_feats, lo, lo + batch_size))  # per-image arrays (b, ...)
        b = len(enc[0])
        prefix = np.zeros((b, max_words + 1), dtype=np.int32)  # (b, W + 1)
        prefix[:, 0] = vocab.start_id
        ids = np.zeros((b, max_words), dtype=np.int32)  # (b, W)
        word_p = np.zeros((b, max_words), dtype=np.float32)  # (b, W)
        maps = np.zeros((b, max_words, GRID_REGIONS), dtype=np.float32)  # (b, W, 49) last position
        means = np.zeros((b, max_words, GRID_REGIONS), dtype=np.float32)  # (b, W, 49) mean over positions
        n_words = np.zeros(b, dtype=np.int32)  # (b,)
        score = np.zeros(b, dtype=np.float64)  # (b,)
        active = np.arange(b)
        for step in range(max_words):
            probs, pooled, last = passes.step(*(e[active] for e in enc), prefix[active, : step + 1])
            probs, pooled, last = probs.numpy(), pooled.numpy(), last.numpy()  # (a, V), (a, 49), (a, 49)
            adjusted = _adjust(probs, opts, lo + active, ids[active], n_words[active], banned, end_id)  # (a, V)
            choice = adjusted.argmax(axis=1)  # (a,)
            p = probs[np.arange(len(active)), choice]  # (a,) the model's own probability
            score[active] += np.log(np.maximum(adjusted[np.arange(len(active)), choice], 1e-30))
            is_end = choice == end_id
            words = active[~is_end]
            ids[words, step] = choice[~is_end]
            word_p[words, step] = p[~is_end]
            maps[words, step] = last[~is_end]
            means[words, step] = pooled[~is_end]
            n_words[words] += 1
            prefix[active, step + 1] = choice
            active = words
            if len(active) == 0:
                break
        for i in range(b):
            n = int(n_words[i])
            out.append(
                _make_caption(vocab, ids[i, :n].tolist(), word_p[i, :n].tolist(), maps[i, :n] if with_maps else None,
                              means[i, :n] if with_maps else None, score[i])
            )
    return out


def beam_decode(
    model: Any,
    global_feats: Any,
    grid_feats: Any,
    vocab: Any,
    beam: int = 3,
    max_words: int = 20,
    batch_size: int = 64,
    length_penalty: float = 0.0,
    options: DecodeOptions | None = None,
) -> list[Caption]:
    """Beam-search captions for N images; beam=1 equals greedy.

    Beams are ranked by summed log-probability while searching; the final caption of an image is the
    beam with the best `score / ((5 + n) / 6) ** alpha` (GNMT; n = generated tokens incl. `<end>`;
    alpha = `length_penalty`, 0.0: plain sum, which favours short captions). `options` (its max_words
    and length_penalty win over the arguments) adds constraints and retrieval-aware decoding.
    """
    opts = options or DecodeOptions(max_words=max_words, length_penalty=length_penalty)
    max_words, length_penalty = opts.max_words, opts.length_penalty
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    n_images = _check_inputs(global_feats, grid_feats)
    passes = _passes(model)
    with_maps = has_grid_attention(model)
    banned = _banned(vocab)
    end_id, pad_id = int(vocab.end_id), int(vocab.pad_id)
    out: list[Caption] = []
    for lo in range(0, n_images, batch_size):
        enc = passes.encode(*_batch(global_feats, grid_feats, lo, lo + batch_size))  # per-image arrays (b, ...)
        b, k = len(enc[0]), beam
        seqs = np.zeros((b, k, max_words + 1), dtype=np.int32)  # (b, k, W + 1) incl. <start>
        seqs[:, :, 0] = vocab.start_id
        word_p = np.zeros((b, k, max_words), dtype=np.float32)  # (b, k, W)
        maps = np.zeros((b, k, max_words, GRID_REGIONS), dtype=np.float32)  # (b, k, W, 49) last position
        means = np.zeros((b, k, max_words, GRID_REGIONS), dtype=np.float32)  # (b, k, W, 49) mean
        n_words = np.zeros((b, k), dtype=np.int32)  # (b, k)
        n_tokens = np.zeros((b, k), dtype=np.int32)  # (b, k) words + <end>
        done = np.zeros((b, k), dtype=bool)  # (b, k)
        score = np.full((b, k), _NEG, dtype=np.float64)  # (b, k): only beam 0 is live at first
        score[:, 0] = 0.0
        active = np.arange(b)
        for step in range(max_words):
            a = len(active)
            flat_enc = [np.repeat(e[active], k, axis=0) for e in enc]  # per beam (a*k, ...)
            flat_prefix = seqs[active, :, : step + 1].reshape(a * k, step + 1)  # (a*k, s+1)
            probs, pooled, last = passes.step(*flat_enc, flat_prefix)
            flat_probs = probs.numpy()  # (a*k, V)
            vsize = flat_probs.shape[-1]
            probs = flat_probs.reshape(a, k, vsize)  # (a, k, V)
            pooled = pooled.numpy().reshape(a, k, GRID_REGIONS)  # (a, k, 49)
            last = last.numpy().reshape(a, k, GRID_REGIONS)  # (a, k, 49)
            generated = seqs[active, :, 1:].reshape(a * k, max_words)  # (a*k, W)
            adjusted = _adjust(flat_probs, opts, np.repeat(lo + active, k), generated,
                               n_words[active].reshape(a * k), banned, end_id).reshape(a, k, vsize)  # (a, k, V)
            logp = np.where(adjusted > 0, np.log(np.maximum(adjusted, 1e-30)), _NEG)  # (a, k, V)
            fin = done[active]  # (a, k)
            logp[fin] = _NEG
            logp[fin, pad_id] = 0.0  # a finished beam carries over unchanged via a <pad> no-op
            cand = score[active][:, :, None] + logp  # (a, k, V)
            flat = cand.reshape(a, k * vsize)  # (a, k*V)
            top = np.argsort(-flat, axis=1, kind="stable")[:, :k]  # (a, k)
            parent, tok = top // vsize, top % vsize  # (a, k), (a, k)
            rows = active[:, None]  # (a, 1)
            new_score = np.take_along_axis(flat, top, axis=1)  # (a, k)
            par_done = np.take_along_axis(fin, parent, axis=1)  # (a, k)
            seqs[active] = seqs[rows, parent]
            word_p[active] = word_p[rows, parent]
            maps[active] = maps[rows, parent]
            means[active] = means[rows, parent]
            n_words[active] = n_words[rows, parent]
            n_tokens[active] = n_tokens[rows, parent]
            tok_p = probs[np.arange(a)[:, None], parent, tok]  # (a, k)
            tok_map = last[np.arange(a)[:, None], parent]  # (a, k, 49)
            tok_mean = pooled[np.arange(a)[:, None], parent]  # (a, k, 49)
            live = ~par_done & (new_score > _NEG / 2)  # (a, k) beams extended this step
            is_word = live & (tok != end_id)
            ai, ki = np.nonzero(is_word)
            ri = active[ai]
            seqs[ri, ki, step + 1] = tok[ai, ki]
            word_p[ri, ki, step] = tok_p[ai, ki]
            maps[ri, ki, step] = tok_map[ai, ki]
            means[ri, ki, step] = tok_mean[ai, ki]
            n_words[ri, ki] += 1
            n_tokens[active] += live
            score[active] = new_score
            done[active] = par_done | (live & (tok == end_id)) | ~(new_score > _NEG / 2)
            finished = done[active].all(axis=1)  # (a,)
            if not length_penalty:  # scores only fall: a finished best beam can no longer be beaten
                best_done = np.where(done[active], score[active], -np.inf).max(axis=1)  # (a,)
                best_live = np.where(done[active], -np.inf, score[active]).max(axis=1)  # (a,)
                finished |= best_done >= best_live
            active = active[~finished]
            if len(active) == 0:
                break
        norm = score / gnmt_length_penalty(n_tokens, length_penalty) if length_penalty else score  # (b, k)
        best = np.argmax(np.where(score > _NEG / 2, norm, -np.inf), axis=1)  # (b,)
        for i in range(b):
            j, n = int(best[i]), int(n_words[i, best[i]])
            out.append(
                _make_caption(
                    vocab,
                    seqs[i, j, 1 : 1 + n].tolist(),
                    word_p[i, j, :n].tolist(),
                    maps[i, j, :n] if with_maps else None,
                    means[i, j, :n] if with_maps else None,
                    score[i, j],
                )
            )
    return out
