"""Batched greedy and beam search with per-word attention maps.

Many images are decoded at once: the image side (global encoding, projected grid regions) is computed
once per image, then each step runs one compiled pass of the prefix side over every unfinished caption
(beam) of a batch (`medcap.model.passes`). The model's next-word probabilities then go through the
decoding processors built once from `DecodeOptions` (`processors.build_processors`: caption memory,
banned words, repeat bans, minimum length), the same list for both searches. A caption stops at `<end>`
or after `max_words` words. Per generated word two 7x7 maps are kept: `attention`, the weights of the
last prefix position (the one whose attended context the default decoder reads to choose the word), and
`attention_mean`, the mean over all prefix positions. Scores are sums of log-probabilities (after the
processors) of every generated token, `<end>` included; the beam scorer ranks finished beams with the
GNMT length penalty.

The caption memory is looked up by image id: `image_ids[i]` names the image of row i of the features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.model.build import has_grid_attention
from medcap.model.decoding.captions import Caption, check_inputs, feature_batch, make_caption
from medcap.model.decoding.memory import CaptionMemory
from medcap.model.decoding.options import DecodeOptions
from medcap.model.decoding.processors import Hypotheses, build_processors
from medcap.model.layers import GRID_REGIONS
from medcap.model.passes import compiled_passes

log = logging.getLogger(__name__)

_NEG = -1e30


def gnmt_length_penalty(n_tokens: np.ndarray, alpha: float) -> np.ndarray:
    """((5 + n) / 6) ** alpha (Wu et al. 2016); 1 when alpha is 0."""
    return ((5.0 + np.asarray(n_tokens, dtype=np.float64)) / 6.0) ** float(alpha)


def decode(model: Any, global_feats: Any, grid_feats: Any, vocab: Any, options: DecodeOptions | None = None, *,
           memory: CaptionMemory | None = None, image_ids: Sequence[str] | None = None,
           batch_size: int | None = None, fact_bans: Sequence[np.ndarray] | None = None) -> list[Caption]:
    """Captions for N images: greedy search when options.beam_size is 1, beam search otherwise."""
    opts = options or DecodeOptions()
    search = greedy_search if opts.beam_size <= 1 else beam_search
    extra = {} if batch_size is None else {"batch_size": batch_size}
    return search(model, global_feats, grid_feats, vocab, opts, memory=memory, image_ids=image_ids,
                  fact_bans=fact_bans, **extra)


def greedy_search(model: Any, global_feats: Any, grid_feats: Any, vocab: Any, options: DecodeOptions | None = None,
                  *, memory: CaptionMemory | None = None, image_ids: Sequence[str] | None = None,
                  batch_size: int = 256, stop_at_end: bool = True,
                  fact_bans: Sequence[np.ndarray] | None = None) -> list[Caption]:
    """Greedy captions for N images (global (N, D), grid (N, 7, 7, 512) or None for attention="self").

    `options` (default: plain greedy, 20 words; its beam_size is not read) say how; `memory` is the caption
    memory holding `image_ids` (one per image) when options.memory_k > 0. `stop_at_end=False` forbids
    `<end>` and always generates `max_words` words (benchmarks).
    """
    opts = options or DecodeOptions()
    max_words = opts.max_words
    n_images = check_inputs(global_feats, grid_feats, image_ids)
    passes = compiled_passes(model)
    with_maps = has_grid_attention(model)
    processors = build_processors(opts, vocab, memory, image_ids, ban_end=not stop_at_end, fact_bans=fact_bans)
    end_id = int(vocab.end_id)
    out: list[Caption] = []
    for lo in range(0, n_images, batch_size):
        enc = passes.encode(*feature_batch(global_feats, grid_feats, lo, lo + batch_size))  # per image (b, ...)
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
            adjusted = processors(probs, Hypotheses(lo + active, ids[active], n_words[active]))  # (a, V)
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
                make_caption(vocab, ids[i, :n].tolist(), word_p[i, :n].tolist(), maps[i, :n] if with_maps else None,
                             means[i, :n] if with_maps else None, score[i])
            )
    return out


def beam_search(model: Any, global_feats: Any, grid_feats: Any, vocab: Any, options: DecodeOptions | None = None,
                *, memory: CaptionMemory | None = None, image_ids: Sequence[str] | None = None,
                batch_size: int = 64, fact_bans: Sequence[np.ndarray] | None = None) -> list[Caption]:
    """Beam-search captions for N images with options.beam_size beams (1 equals greedy).

    Beams are ranked by summed log-probability while searching; the beam scorer picks an image's final
    caption by `score / ((5 + n) / 6) ** alpha` (GNMT; n = generated tokens incl. `<end>`; alpha =
    options.length_penalty, 0.0: plain sum, which favours short captions). `memory` and `image_ids` as
    for `greedy_search`.
    """
    opts = options or DecodeOptions()
    max_words, length_penalty, k = opts.max_words, opts.length_penalty, opts.beam_size
    n_images = check_inputs(global_feats, grid_feats, image_ids)
    passes = compiled_passes(model)
    with_maps = has_grid_attention(model)
    processors = build_processors(opts, vocab, memory, image_ids, fact_bans=fact_bans)
    end_id, pad_id = int(vocab.end_id), int(vocab.pad_id)
    out: list[Caption] = []
    for lo in range(0, n_images, batch_size):
        enc = passes.encode(*feature_batch(global_feats, grid_feats, lo, lo + batch_size))  # per image (b, ...)
        b = len(enc[0])
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
            hyps = Hypotheses(np.repeat(lo + active, k), seqs[active, :, 1:].reshape(a * k, max_words),
                              n_words[active].reshape(a * k))  # one per beam
            adjusted = processors(flat_probs, hyps).reshape(a, k, vsize)  # (a, k, V)
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
            finished = done[active].all(axis=1) | _settled(score[active], done[active], length_penalty)  # (a,)
            active = active[~finished]
            if len(active) == 0:
                break
        best = _best_beams(score, n_tokens, length_penalty)  # (b,)
        for i in range(b):
            j, n = int(best[i]), int(n_words[i, best[i]])
            out.append(
                make_caption(vocab, seqs[i, j, 1 : 1 + n].tolist(), word_p[i, j, :n].tolist(),
                             maps[i, j, :n] if with_maps else None, means[i, j, :n] if with_maps else None,
                             score[i, j])
            )
    return out


def _settled(score: np.ndarray, done: np.ndarray, length_penalty: float) -> np.ndarray:
    """(a,) images whose best beam can no longer change: without a length penalty scores only fall, so a
    finished best beam can no longer be beaten (with one, a longer beam may still win)."""
    if length_penalty:
        return np.zeros(len(score), dtype=bool)
    best_done = np.where(done, score, -np.inf).max(axis=1)  # (a,)
    best_live = np.where(done, -np.inf, score).max(axis=1)  # (a,)
    return best_done >= best_live


def _best_beams(score: np.ndarray, n_tokens: np.ndarray, length_penalty: float) -> np.ndarray:
    """The beam scorer: (b,) index of each image's best beam by score / GNMT length penalty."""
    norm = score / gnmt_length_penalty(n_tokens, length_penalty) if length_penalty else score  # (b, k)
    return np.argmax(np.where(score > _NEG / 2, norm, -np.inf), axis=1)  # (b,)
