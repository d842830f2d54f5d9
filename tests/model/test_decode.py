"""Batched greedy and beam decoding: exact results on a hand-built Markov model, and on a tiny real model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from medcap.config import RunConfig  # noqa: E402
from medcap.model import DecodeOptions, beam_search, build_model, greedy_search  # noqa: E402

WORDS = ["<pad>", "<unk>", "<start>", "<end>", "a", "b", "c", "d"] + [f"w{i}" for i in range(22)]
VOCAB = SimpleNamespace(words=WORDS, pad_id=0, unk_id=1, start_id=2, end_id=3)
V = len(WORDS)


class MarkovModel:
    """Next-word probabilities depend only on the last prefix token; attention is one-hot on region = token id."""

    def __init__(self, table: dict[int, dict[int, float]]) -> None:
        probs = np.zeros((V, V), dtype=np.float32)
        probs[:, 3] = 1.0  # default: end
        for tok, row in table.items():
            probs[tok] = 0.0
            for nxt, p in row.items():
                probs[tok, nxt] = p
        self.table = tf.constant(probs)

    def __call__(self, inputs: dict, training: bool = False) -> dict:
        prefix = tf.convert_to_tensor(inputs["prefix"])  # (B, T)
        last = prefix[:, -1]  # decoding prefixes carry no padding
        att = tf.one_hot(prefix, 49, dtype=tf.float32)  # (B, T, 49)
        return {"probs": tf.gather(self.table, last), "attention": att}


def feats(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 12), dtype=np.float32), rng.random((n, 7, 7, 512), dtype=np.float32)


# start -> a .55 | b .45 ; a -> c .35 | d .35 | end .30 ; b -> end .9 | c .1 ; c, d -> end
TRAP = {2: {4: 0.55, 5: 0.45}, 4: {6: 0.35, 7: 0.35, 3: 0.30}, 5: {3: 0.9, 6: 0.1}}


def test_greedy_exact_caption_probs_score_and_attention() -> None:
    g, grid = feats(3)
    caps = greedy_search(MarkovModel(TRAP), g, grid, VOCAB)
    assert len(caps) == 3
    c = caps[0]
    assert c.words == ["a", "c"] and c.text == "a c" and c.token_ids == [4, 6]  # tie c/d: the first id
    np.testing.assert_allclose(c.probs, [0.55, 0.35], rtol=1e-6)
    assert c.score == pytest.approx(np.log(0.55) + np.log(0.35) + np.log(1.0), rel=1e-6)  # <end> counted
    assert c.attention.shape == (2, 7, 7)
    want = np.zeros((2, 49))
    want[0, 2] = 1.0  # "a" came from prefix [<start>]
    want[1, 4] = 1.0  # "c" from [<start>, a]: the last position's map (where "a" looks)
    np.testing.assert_allclose(c.attention.reshape(2, 49), want, atol=1e-6)
    mean = np.zeros((2, 49))
    mean[0, 2] = 1.0
    mean[1, [2, 4]] = 0.5  # the mean over the prefix positions' maps, kept as attention_mean
    np.testing.assert_allclose(c.attention_mean.reshape(2, 49), mean, atol=1e-6)


def test_beam_finds_the_better_caption_greedy_misses() -> None:
    g, grid = feats(4)
    model = MarkovModel(TRAP)
    greedy = greedy_search(model, g, grid, VOCAB)
    beam = beam_search(model, g, grid, VOCAB, DecodeOptions(beam_size=2), batch_size=3)
    assert [c.text for c in beam] == ["b"] * 4
    assert beam[0].score == pytest.approx(np.log(0.45) + np.log(0.9), rel=1e-6)
    assert beam[0].score > greedy[0].score
    np.testing.assert_allclose(beam[0].probs, [0.45])
    assert beam[0].attention.shape == (1, 7, 7) and beam[0].attention.reshape(49)[2] == 1.0
    # beam 1 is greedy, also here
    assert [c.token_ids for c in beam_search(model, g, grid, VOCAB)] == [c.token_ids for c in greedy]


def test_special_tokens_are_never_generated_and_length_is_capped() -> None:
    g, grid = feats(2)
    # <unk> and <pad> are the most likely tokens, but are masked; "a" repeats and never ends
    model = MarkovModel({2: {1: 0.6, 0: 0.2, 4: 0.2}, 4: {1: 0.5, 2: 0.3, 4: 0.2}})
    for caps in (
        greedy_search(model, g, grid, VOCAB, DecodeOptions(max_words=5)),
        beam_search(model, g, grid, VOCAB, DecodeOptions(beam_size=3, max_words=5)),
    ):
        assert [c.words for c in caps] == [["a"] * 5] * 2
        assert caps[0].score == pytest.approx(np.log(0.2) * 5, rel=1e-5)  # no <end> reached


def test_stop_at_end_false_forces_max_words() -> None:
    g, grid = feats(2)
    caps = greedy_search(MarkovModel(TRAP), g, grid, VOCAB, DecodeOptions(max_words=6), stop_at_end=False)
    assert all(len(c.words) == 6 for c in caps)
    assert "<end>" not in caps[0].words


def tiny(attention: str = "grid") -> object:
    cfg = RunConfig(embed_dim=16, lstm_units=16, dense_units=16, attn_units=8, attention=attention)
    tf.keras.utils.set_random_seed(1)
    return build_model(cfg, V, 12)


def test_real_model_greedy_equals_beam_one_and_beam_scores_at_least_greedy() -> None:
    model = tiny()
    g, grid = feats(9, seed=2)
    eight = DecodeOptions(max_words=8)
    greedy = greedy_search(model, g, grid, VOCAB, eight, batch_size=4)
    one = beam_search(model, g, grid, VOCAB, eight, batch_size=5)
    three = beam_search(model, g, grid, VOCAB, eight.replace(beam_size=3))
    for a, b, c in zip(greedy, one, three, strict=True):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5)
        np.testing.assert_allclose(a.attention, b.attention, atol=1e-6)
        assert a.score == pytest.approx(b.score, rel=1e-5)
        assert c.score >= a.score - 1e-6
        assert a.attention.shape == (len(a.words), 7, 7)
        np.testing.assert_allclose(a.attention.sum(axis=(1, 2)), 1.0, atol=1e-5)
        assert not set(a.token_ids) & {0, 1, 2, 3}
        words_logp = float(np.log(a.probs).sum())
        if len(a.words) == 8:  # cut at max_words: the score is the words' log-probs
            assert a.score == pytest.approx(words_logp, rel=1e-5)
        else:  # ended: the <end> token's log-prob is included too
            assert a.score < words_logp - 1e-6
    # batched = one image at a time
    solo = greedy_search(model, g[3:4], grid[3:4], VOCAB, eight, batch_size=1)[0]
    assert solo.token_ids == greedy[3].token_ids


def test_self_attention_model_has_no_maps() -> None:
    model = tiny("self")
    g, _ = feats(3)
    four = DecodeOptions(max_words=4)
    caps = greedy_search(model, g, None, VOCAB, four)
    assert all(c.attention is None for c in caps)
    assert [c.token_ids for c in beam_search(model, g, None, VOCAB, four)] == [c.token_ids for c in caps]


def test_bad_feature_shapes_are_reported() -> None:
    g, grid = feats(2)
    with pytest.raises(ValueError, match="grid features"):
        greedy_search(MarkovModel(TRAP), g, grid[:1], VOCAB)
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        DecodeOptions(beam_size=0)
    with pytest.raises(ValueError, match="3 image ids for 2 images"):
        greedy_search(MarkovModel(TRAP), g, grid, VOCAB, image_ids=["a", "b", "c"])


@pytest.mark.parametrize(("attention", "layers", "state"), [("grid", 2, "last_context"), ("self", 1, "last")])
def test_decoding_with_the_model_passes_equals_decoding_with_the_whole_model(attention: str, layers: int,
                                                                              state: str) -> None:
    """The model's encode/step passes decode exactly what running the whole model at every step decodes."""
    cfg = RunConfig(embed_dim=16, lstm_units=16, dense_units=16, attn_units=8, layers=layers, decoder_state=state,
                    attention=attention)
    tf.keras.utils.set_random_seed(4)
    model = build_model(cfg, V, 12, {"global": 0.5, "grid": 2.0})
    g, grid = feats(5, seed=4)

    def whole(inputs: dict, training: bool = False) -> dict:  # a plain callable: no passes
        return model(inputs, training=training)

    six, beams = DecodeOptions(max_words=6), DecodeOptions(max_words=6, beam_size=2)
    for fast, slow in ((greedy_search(model, g, grid, VOCAB, six), greedy_search(whole, g, grid, VOCAB, six)),
                       (beam_search(model, g, grid, VOCAB, beams), beam_search(whole, g, grid, VOCAB, beams))):
        for a, b in zip(fast, slow, strict=True):
            assert a.token_ids == b.token_ids
            np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5)
            assert a.score == pytest.approx(b.score, rel=1e-5)
            if attention == "grid":
                np.testing.assert_allclose(a.attention, b.attention, atol=1e-6)
            else:
                assert a.attention is None


def test_decode_options_min_length_repeats_and_gnmt_penalty() -> None:
    from medcap.model.decoding import gnmt_length_penalty

    g, grid = feats(2)
    # "a" then <end> is the greedy caption; "a" again is the next best word after "a"
    model = MarkovModel({2: {4: 0.9, 5: 0.1}, 4: {3: 0.6, 4: 0.3, 5: 0.1}, 5: {3: 0.9, 4: 0.1}})
    assert [c.words for c in greedy_search(model, g, grid, VOCAB)] == [["a"]] * 2
    longer = greedy_search(model, g, grid, VOCAB, DecodeOptions(min_words=2))
    assert [c.words for c in longer] == [["a", "a"]] * 2
    no_rep = greedy_search(model, g, grid, VOCAB, DecodeOptions(min_words=2, block_repeats=True))
    assert [c.words for c in no_rep] == [["a", "b"]] * 2
    assert no_rep[0].probs == pytest.approx([0.9, 0.1])
    # beam search applies the same processors: 2 beams, min 2 words, no repeat -> "a b" (0.9 * 0.1 * 0.9)
    beams = beam_search(model, g, grid, VOCAB, DecodeOptions(beam_size=2, min_words=2, block_repeats=True))
    assert [c.words for c in beams] == [["a", "b"]] * 2
    assert beams[0].score == pytest.approx(np.log(0.9 * 0.1 * 0.9))
    assert gnmt_length_penalty(np.array([1, 2]), 0.0).tolist() == [1.0, 1.0]
    assert gnmt_length_penalty(np.array([1]), 1.0)[0] == pytest.approx(1.0)
    assert gnmt_length_penalty(np.array([7]), 0.5)[0] == pytest.approx(np.sqrt(2.0))


def test_memory_mixing_steers_greedy_towards_the_neighbours_words() -> None:
    from medcap.model.decoding import build_memory

    g, grid = feats(2)
    model = MarkovModel({2: {4: 0.6, 5: 0.4}, 4: {3: 1.0}, 5: {3: 1.0}})
    train = np.eye(2, dtype=np.float32)
    memory = build_memory(train, [[5], [4]], np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), ["x", "y"], k=1)
    opts = DecodeOptions(memory_k=1, memory_lambda=0.5)
    caps = greedy_search(model, g, grid, VOCAB, opts, memory=memory, image_ids=["x", "y"])
    # image x's neighbour says "b": 0.5*0.4 + 0.5 = 0.7 beats 0.3; image y's says "a"
    assert [c.words for c in caps] == [["b"], ["a"]]
    assert caps[0].probs == pytest.approx([0.4])  # the model's own probability is reported
    assert caps[0].score == pytest.approx(np.log(0.7))  # the score is the mixed distribution's
    beams = beam_search(model, g, grid, VOCAB, opts.replace(beam_size=2), memory=memory, image_ids=["x", "y"])
    assert [c.words for c in beams] == [["b"], ["a"]]
    # the memory is looked up by id: the same features named the other way round take the other memory
    swapped = greedy_search(model, g, grid, VOCAB, opts, memory=memory, image_ids=["y", "x"])
    assert [c.words for c in swapped] == [["a"], ["b"]]
    with pytest.raises(ValueError, match="caption memory has no image 'z'"):
        greedy_search(model, g, grid, VOCAB, opts, memory=memory, image_ids=["x", "z"])
    with pytest.raises(ValueError, match="needs a caption memory exactly when memory_k > 0"):
        greedy_search(model, g, grid, VOCAB, opts, image_ids=["x", "y"])


def test_decode_options_are_the_run_configs_decoding_fields() -> None:
    import dataclasses

    from medcap.config import DECODE_FIELDS

    fields = {f.name: f.default for f in dataclasses.fields(DecodeOptions)}
    assert set(fields) == {*DECODE_FIELDS, "max_words"}
    run_defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    assert fields == {name: run_defaults[name] for name in fields}  # same names, same defaults
    cfg = RunConfig.from_preset("medcap-best", beam_size=3, no_repeat_ngram=2, max_words=12)
    opts = DecodeOptions.from_config(cfg)
    assert (opts.beam_size, opts.max_words, opts.block_repeats, opts.min_words, opts.no_repeat_ngram,
            opts.memory_k, opts.memory_lambda, opts.memory_temperature) == (3, 12, True, 6, 2, 4, 0.3, 0.1)
    assert opts.replace(beam_size=1, memory_k=0) == dataclasses.replace(opts, beam_size=1, memory_k=0)
    assert opts.replace(length_penalty=1).length_penalty == 1.0 and isinstance(
        opts.replace(length_penalty=1).length_penalty, float)
    with pytest.raises(ValueError, match="unknown decoding options \\['beam'\\]"):
        opts.replace(beam=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.beam_size = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"memory_lambda must be in \[0, 1\], got 1\.5"):
        DecodeOptions(memory_lambda=1.5)
    # metrics.json's record keeps its historic keys; without a memory no memory is reported
    assert DecodeOptions(beam_size=2, block_repeats=True, memory_k=4).describe(None) == {
        "beam": 2, "max_words": 20, "length_penalty": 0.0, "min_words": 0, "block_adjacent": True,
        "no_repeat_ngram": 0, "memory_lambda": 0.0, "memory_k": 0, "memory_order": 2}
