"""The clinical-facts lexicon checked on a dataset's own references (goal: >= 0.90 for modality, plane, region).

    .venv/bin/python -m benchmarks.facts_lexicon [--dataset medpix:../shared/data/medpix-dev]
        [--store FEATURE_STORE_FOLDER] [--max-words 20] [--seed 42]

For each fact: the images with a label, how many of their reference captions state the fact, and the
share of those that agree with the label (`medcap.eval.facts_score.reference_agreement`), over every
usable caption and over the evaluation's references (captions of at most --max-words words).

With --store (an existing feature store of the dataset; nothing is extracted), also the facts scores of
the two training-free baselines on a case-disjoint model-80 split (split by group, --seed): the most
frequent training caption and the 1-NN training caption (cosine on the global features), scored on the
test images against their labels with case-level 95% CIs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from medcap.data import load_records, make_split, prepare_captions
from medcap.data.facts_lexicon import LEXICON_VERSION
from medcap.eval.baselines import most_frequent_caption, nearest_neighbour_captions
from medcap.eval.facts_score import clinical_facts, facts_lines, reference_agreement

GOAL = 0.90
GOAL_FACTS = ("modality", "plane", "region")


def agreement_table(table, title: str) -> list[str]:
    """Lines: fact, labelled images, references stating it, agreement (and the goal where it applies)."""
    lines = [title, f"{'fact':<12}{'labelled':>10}{'stated':>8}{'agree':>7}{'agreement':>11}"]
    for fact, row in reference_agreement(table).items():
        share = "-" if row["agreement"] is None else f"{row['agreement']:.3f}"
        goal = f"  (goal >= {GOAL:.2f}: {'met' if (row['agreement'] or 0) >= GOAL else 'NOT met'})" \
            if fact in GOAL_FACTS else ""
        lines.append(f"{fact:<12}{row['labelled']:>10}{row['stated']:>8}{row['agree']:>7}{share:>11}{goal}")
    return lines


def baselines(kept, store_path: Path, seed: int) -> list[str]:
    """Facts of the most-frequent and 1-NN captions on a case-disjoint test split (no training)."""
    from medcap.features import open_store

    store = open_store(store_path)
    split = make_split(kept, protocol="model-80", split_by="group", seed=seed)
    by_id = kept.set_index(kept["image_id"].astype(str))
    train = by_id.loc[[i for i in split["train"] if i in store.ids]]
    test = by_id.loc[[i for i in split["test"] if i in store.ids]].reset_index(drop=True)
    g_train = np.asarray(store.gather(list(train.index), with_grid=False)[1], dtype=np.float32)  # (Ntr, D)
    g_test = np.asarray(store.gather(test["image_id"].astype(str).tolist(), with_grid=False)[1], dtype=np.float32)
    tokens = list(train["tokens"])
    mf = most_frequent_caption(tokens, groups=list(train["group"].astype(str)))
    _, nn = nearest_neighbour_captions(g_train, tokens, g_test)  # (Nte,) captions
    systems = {"most_frequent": [mf] * len(test), "nearest_neighbour": nn}
    block, _ = clinical_facts(test, None, systems, groups=test["group"].astype(str).tolist())
    head = (f"training-free baselines on the model-80 group split (seed {seed}): {len(train)} training images, "
            f"{len(test)} test images in {test['group'].nunique()} cases; most frequent caption: {' '.join(mf)!r}")
    return [head, *facts_lines(block)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="medpix:../shared/data/medpix-dev")
    parser.add_argument("--store", type=Path, default=None, help="feature store folder of the dataset (optional)")
    parser.add_argument("--max-words", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = load_records(args.dataset)
    every, _ = prepare_captions(result.table, max_words=10**6)
    kept, _ = prepare_captions(result.table, max_words=args.max_words)
    print(f"clinical-facts lexicon {LEXICON_VERSION} on {args.dataset}: where a reference states a fact, "
          "the share of images where it agrees with the label")
    print("\n".join(agreement_table(every, f"\nall {len(every)} usable captions")))
    print("\n".join(agreement_table(kept, f"\nreferences of at most {args.max_words} words ({len(kept)} images)")))
    if args.store is not None:
        print()
        print("\n".join(baselines(kept, args.store, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
