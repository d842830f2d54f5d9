"""RunConfig: typed fields, one validation, old config.json files, CLI choices and the args round trip."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcap import config
from medcap.base.io import write_text
from medcap.config import RunConfig

# One wrong value per field and the words its error must contain (besides the field name).
BAD_VALUES = {
    "name": (3, "must be a string"),
    "preset": ("model-90", "must be one of model-80, model-70, medcap-best, medcap-facts"),
    "dataset": (None, "must be a string"),
    "protocol": ("model-60", "must be one of model-80, model-70, official, kfold"),
    "split_by": ("patient", "must be one of group, image"),
    "seed": ("42", "must be an int"),
    "split_seed": ("1", "must be an int or null"),
    "fold": (-1, "must be >= 0"),
    "n_folds": (1, "must be >= 2"),
    "max_words": (20.5, "must be an int"),
    "long_captions": ("cut", "must be one of drop, truncate"),
    "min_count": (0, "must be >= 1"),
    "backbone": ("vgg19", "must be one of vgg16, resnet50, densenet121, efficientnetb0"),
    "augment": (-1, "must be >= 0"),
    "attention": ("gird", "must be one of grid, self"),
    "attention_score": ("cosine", "must be one of additive, dot"),
    "region_positions": ("yes", "must be true or false"),
    "embed_dim": ([256], "must be an int"),
    "lstm_units": ("lots", "must be an int"),
    "layers": (0, "must be >= 1"),
    "dense_units": (True, "must be an int"),
    "attn_units": (None, "must be an int"),
    "decoder_state": ("mean", "must be one of last_context, last, none"),
    "dropout": (1.0, "must be < 1"),
    "l2": (-1e-5, "must be >= 0"),
    "learning_rate": ("fast", "must be a number"),
    "batch_size": (0, "must be >= 1"),
    "epochs": (2.0, "must be an int"),
    "patience": (0, "must be >= 1"),
    "lr_patience": ("2", "must be an int"),
    "lr_factor": (0, "must be > 0"),
    "min_lr": (float("nan"), "must be a finite number"),
    "mixed_precision": (1, "must be true or false"),
    "strategy": ("tpu", "must be one of default, mirrored, multi_worker"),
    "feature_store": (7, "must be a string or null"),
    "select_by": ("val_bleu", "must be one of val_loss, val_cider"),
    "beam_size": (0, "must be >= 1"),
    "length_penalty": (-0.1, "must be >= 0"),
    "min_words": (1.5, "must be an int"),
    "block_repeats": ("no", "must be true or false"),
    "no_repeat_ngram": (-2, "must be >= 0"),
    "memory_k": (None, "must be an int"),
    "memory_lambda": (1.5, "must be <= 1"),
    "memory_temperature": (0.0, "must be > 0"),
    "facts_constrain": ("yes", "must be true or false"),
    "facts_silent": ("no", "must be true or false"),
    "facts": (0, "must be true or false"),
}


def test_every_field_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) == set(config.field_names())


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_bad_value_names_the_field_and_what_it_expects(name: str) -> None:
    value, expected = BAD_VALUES[name]
    with pytest.raises(ValueError) as info:
        RunConfig.from_dict({**RunConfig().to_dict(), name: value}, source="runs/x/config.json")
    assert str(info.value) == f"runs/x/config.json: {name} {expected}, got {value!r}"
    with pytest.raises(ValueError, match=f"^{name} "):  # the same check for configs made in code
        RunConfig(**{name: value})


def test_bad_config_json_example_from_the_issue() -> None:
    with pytest.raises(ValueError, match=r"^runs/x/config\.json: lstm_units must be an int, got 'lots'$"):
        RunConfig.from_dict({"lstm_units": "lots"}, source="runs/x/config.json")
    with pytest.raises(ValueError, match=r"runs/x/config\.json: run settings must be a JSON object, got list"):
        RunConfig.from_dict([1, 2], source="runs/x/config.json")


def test_replace_and_edits_are_validated_too() -> None:
    cfg = RunConfig()
    with pytest.raises(ValueError, match="layers must be >= 1, got 0"):
        dataclasses.replace(cfg, layers=0)
    cfg.epochs = 0
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        cfg.validate()


def test_ints_for_floats_are_accepted_as_floats() -> None:
    cfg = RunConfig.from_dict({"learning_rate": 1, "dropout": 0})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.dropout == 0.0 and isinstance(cfg.dropout, float)


def test_old_config_with_options_in_extra_loads_typed_settings(caplog: pytest.LogCaptureFixture) -> None:
    """A run saved by an older medcap (model options and the feature store in `extra`, a `beam` field,
    no decoder_state) loads to the typed settings it trained with."""
    old = {"name": "old", "preset": "model-70", "dataset": "synthetic:40", "protocol": "model-70", "beam": 1,
           "batch_size": 128, "extra": {"attention_score": "dot", "region_positions": False,
                                        "feature_store": "/stores/x", "note": "hi"}}
    cfg = RunConfig.from_dict(old)
    assert (cfg.attention_score, cfg.region_positions, cfg.feature_store) == ("dot", False, "/stores/x")
    assert cfg.decoder_state == "none"  # saved before the field existed: no state path
    assert cfg.model_settings() == {**RunConfig(attention_score="dot", region_positions=False,
                                                decoder_state="none").model_settings()}
    assert "feature_store" not in cfg.model_settings()  # plumbing, not a model setting
    assert "extra.note" in caplog.text and "beam" not in caplog.text  # unknown keys named; retired ones quiet
    # the new layout saves typed fields and reads back unchanged
    assert "extra" not in cfg.to_dict() and RunConfig.from_dict(cfg.to_dict()) == cfg
    # an old config saved with empty extra and the defaults gives today's defaults (same model)
    plain = RunConfig.from_dict({"name": "older", "extra": {}, "decoder_state": "last_context"})
    assert plain == RunConfig(name="older")
    with pytest.raises(ValueError, match=r"^run settings: attention_score must be one of additive, dot"):
        RunConfig.from_dict({"extra": {"attention_score": "cosine"}})


def test_old_config_rebuilds_the_same_model() -> None:
    keras = pytest.importorskip("keras")
    from medcap.model import build_model

    small = {"embed_dim": 8, "lstm_units": 8, "dense_units": 8, "attn_units": 8}
    old = RunConfig.from_dict({**small, "extra": {"attention_score": "dot", "region_positions": False}})
    new = RunConfig(**small, attention_score="dot", region_positions=False, decoder_state="none")

    def layout(cfg: RunConfig) -> list[tuple[str, list[tuple[int, ...]]]]:
        model = build_model(cfg, vocab_size=12, global_dim=6)
        attention = model.get_layer("grid_attention").get_config()
        assert (attention["score"], attention["region_positions"]) == ("dot", False)
        return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers]

    assert layout(old) == layout(new)
    assert keras.backend.backend() == "tensorflow"


def _subparser(command: str) -> argparse.ArgumentParser:
    from medcap.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def test_cli_choices_are_the_config_literals() -> None:
    literal_fields = {n for n in config.field_names() if config.choices(n) is not None}
    assert literal_fields == {"preset", "protocol", "split_by", "long_captions", "backbone", "attention",
                              "attention_score", "decoder_state", "strategy", "select_by"}
    assert config.DECODER_STATE_CHOICES == ("last_context", "last", "none")
    for command in ("train", "grid"):
        actions = {a.dest: a for a in _subparser(command)._actions}
        for name in literal_fields:
            assert tuple(actions[name].choices) == config.choices(name), (command, name)
    data = {a.dest: a for a in _subparser("data")._actions}
    for name in ("protocol", "split_by", "long_captions"):
        assert tuple(data[name].choices) == config.choices(name)
        assert data[name].default == config.default(name)


def test_feature_backbones_are_the_config_choices() -> None:
    pytest.importorskip("tensorflow")
    from medcap.features.backbones import BACKBONES

    assert BACKBONES == config.BACKBONE_CHOICES


def test_train_cli_args_round_trip(tmp_path: Path) -> None:
    """The argument list made from a config parses (with the real train parser) back to that config."""
    from medcap.cli import build_parser
    from medcap.cli.train_cmd import config_from_args
    from medcap.config import train_cli_args

    store = tmp_path.resolve() / "store"
    every = RunConfig(name="my run", preset="model-70", dataset="csv:/data/x.csv", protocol="official",
                      split_by="image", seed=7, max_words=15, long_captions="truncate", min_count=1,
                      backbone="resnet50", augment=2, attention="self", attention_score="dot",
                      region_positions=False, embed_dim=32, lstm_units=48, layers=3, dense_units=40,
                      attn_units=24, decoder_state="last", dropout=0.25, l2=3e-6, learning_rate=4.5e-4,
                      batch_size=96, epochs=9, patience=4, lr_patience=3, lr_factor=0.3, min_lr=2e-6,
                      mixed_precision=True, strategy="mirrored", feature_store=str(store), split_seed=3,
                      fold=1, n_folds=4, select_by="val_cider", beam_size=3, length_penalty=0.6, min_words=4,
                      block_repeats=True, no_repeat_ngram=3, memory_k=8, memory_lambda=0.5,
                      memory_temperature=0.05, facts=True, facts_constrain=True, facts_silent=True)
    assert all(getattr(every, n) != config.default(n) for n in config.field_names())  # every field moved
    for cfg in (every, RunConfig.from_preset("model-80", dataset="synthetic"), RunConfig(preset="model-70")):
        args = train_cli_args(cfg)
        assert args[:5] == ["train", "--preset", cfg.preset, "--dataset", cfg.dataset]
        assert config_from_args(build_parser().parse_args(args)) == cfg
    assert train_cli_args(RunConfig.from_preset("model-80", dataset="synthetic")) == [
        "train", "--preset", "model-80", "--dataset", "synthetic"]
    # an overrides mapping works the same (None = the preset's) and is validated
    assert train_cli_args({"preset": "model-70", "dataset": "synthetic", "epochs": 3, "batch_size": None,
                           "learning_rate": 5e-4, "mixed_precision": False}) == [
        "train", "--preset", "model-70", "--dataset", "synthetic", "--lr", "0.0005", "--epochs", "3"]
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        train_cli_args({"dataset": "synthetic", "epochs": 0})
    with pytest.raises(ValueError, match="unknown run settings"):
        train_cli_args({"dataset": "synthetic", "epoch": 3})


def test_train_cli_bad_value_is_a_clean_error(caplog: pytest.LogCaptureFixture) -> None:
    from medcap.cli import main

    assert main(["train", "--dataset", "synthetic", "--epochs", "0"]) == 2
    assert "epochs must be >= 1, got 0" in caplog.text


def _captions_csv(root: Path) -> str:
    captions = ["CT of the chest: 3.5 cm LUL mass, T2-bright.", "",
                "Replace this - DESCRIPTION OF THE IMAGE OR FINDINGS.",
                " ".join(f"w{i}" for i in range(25)), "Small nodule."]
    rows = []
    for i, caption in enumerate(captions):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(root / f"im{i}.png")
        rows.append({"image_id": f"im{i}", "image_path": f"im{i}.png", "caption": caption, "group": f"g{i}"})
    write_text(root / "data.csv", pd.DataFrame(rows).to_csv(index=False))
    return f"csv:{root / 'data.csv'}"


def test_load_captioned_known_values(tmp_path: Path) -> None:
    from medcap.data import load_captioned
    from medcap.eval.evalset import prepared_table

    spec = _captions_csv(tmp_path)
    result, table, dropped = load_captioned(spec, max_words=20, long_captions="drop")
    assert result.records_read == 5
    assert dropped == {"empty_caption": 1, "placeholder": 1, "too_long": 1}
    assert table["image_id"].tolist() == ["im0", "im4"] and table.index.tolist() == [0, 1]
    assert table["tokens"].tolist() == [["ct", "of", "the", "chest", "3.5", "cm", "lul", "mass", "t2", "bright"],
                                        ["small", "nodule"]]
    _, cut, dropped = load_captioned(spec, max_words=20, long_captions="truncate")
    assert dropped == {"empty_caption": 1, "placeholder": 1}
    assert cut["image_id"].tolist() == ["im0", "im3", "im4"]
    assert cut["tokens"][1] == [f"w{i}" for i in range(20)]
    # evaluation reads exactly what training reads
    _, same = prepared_table(spec, RunConfig(max_words=20, long_captions="truncate"))
    pd.testing.assert_frame_equal(same, cut)


def test_fold_must_be_below_n_folds_and_split_seed_defaults_to_seed() -> None:
    with pytest.raises(ValueError, match=r"fold must be < n_folds \(3\), got 3"):
        RunConfig(protocol="kfold", fold=3, n_folds=3)
    assert RunConfig(seed=7).effective_split_seed == 7
    assert RunConfig(seed=7, split_seed=1).effective_split_seed == 1
    best = RunConfig.from_preset("medcap-best")
    assert best.long_captions == "truncate" and best.memory_k > 0 and best.block_repeats
    assert RunConfig.from_preset("model-80").decode_settings() == {
        "beam_size": 1, "length_penalty": 0.0, "min_words": 0, "block_repeats": False, "no_repeat_ngram": 0,
        "memory_k": 0, "memory_lambda": 0.3, "memory_temperature": 0.1, "facts_constrain": False,
        "facts_silent": False}
