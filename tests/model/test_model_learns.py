"""Key behavioural test: the next word depends on WHERE the bright region is; the model must attend to it.

Every image has the same "lesion" features in one of four grid regions (the global feature is noise),
so the mean over regions carries no class information: only attention on the bright region, plus the
region's position, tells the classes apart. Trained through the lazy pairs pipeline and compiled model.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medcap.config import RunConfig  # noqa: E402
from medcap.model import build_model, compile_model, greedy_search, make_pairs_dataset  # noqa: E402

REGIONS = [0, 6, 42, 48]  # the four corners of the 7x7 grid
VOCAB = SimpleNamespace(
    words=["<pad>", "<unk>", "<start>", "<end>"] + [f"w{i}" for i in range(26)],
    pad_id=0,
    unk_id=1,
    start_id=2,
    end_id=3,
)


def toy_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cls = np.arange(n) % 4
    grid = (0.1 * rng.random((n, 49, 512))).astype(np.float32)  # (n, 49, 512) background
    grid[np.arange(n), np.array(REGIONS)[cls], :16] += 1.0  # the lesion lights up 16 channels
    return rng.random((n, 12), dtype=np.float32), grid.reshape(n, 7, 7, 512), cls


@pytest.mark.slow
def test_model_learns_to_attend_to_the_bright_region() -> None:
    keras.utils.set_random_seed(0)
    g, grid, cls = toy_images(64, seed=0)
    cfg = RunConfig(embed_dim=16, lstm_units=16, dense_units=16, attn_units=16, dropout=0.1, learning_rate=1e-2)
    model = compile_model(build_model(cfg, len(VOCAB.words), 12), cfg, jit_compile=False)
    captions = [[4 + int(c)] for c in cls]  # one word naming the corner
    train = make_pairs_dataset(g, grid, np.arange(64), captions, 32, seed=0, num_epochs=None)
    val = make_pairs_dataset(g, grid, np.arange(64), captions, 64, shuffle=False)
    hist = model.fit(train, epochs=30, steps_per_epoch=4, validation_data=val, shuffle=False, verbose=0).history
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]

    g2, grid2, cls2 = toy_images(40, seed=1)  # unseen images
    caps = greedy_search(model, g2, grid2, VOCAB)
    first = np.array([c.token_ids[0] if c.token_ids else -1 for c in caps])
    assert (first == 4 + cls2).mean() >= 0.9
    named = [c for c in caps if c.token_ids]
    mass = np.array([c.attention[0].reshape(49)[REGIONS[k]] for c, k in zip(caps, cls2, strict=True) if c.token_ids])
    assert len(named) == len(mass)
    assert mass.mean() >= 0.5  # uniform attention would give 1/49 ~ 0.02
