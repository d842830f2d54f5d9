"""A study's decoding variants: ablations switch a lever off, additions switch one on, only where it changes
something."""

from __future__ import annotations

from medcap.config import RunConfig
from medcap.experiments.levers import candidates


def test_a_fact_constrained_system_gets_its_unconstrained_and_its_silent_variants() -> None:
    facts = candidates(RunConfig.from_preset("medcap-facts"))
    assert facts["no_facts_constrain"] == {"facts_constrain": False, "facts_silent": False}
    assert facts["facts_silent"] == {"facts_silent": True}
    assert "neural_only" not in facts  # no caption memory: not retrieval-augmented
    assert facts["no_repeat_2gram"] == {"no_repeat_ngram": 2}
    paper = candidates(RunConfig.from_preset("model-80"))
    assert not {"no_facts_constrain", "facts_silent"} & set(paper) and "no_repeat_2gram" in paper
    assert "no_repeat_2gram" not in candidates(RunConfig.from_preset("model-80", no_repeat_ngram=2))
    already = candidates(RunConfig.from_preset("medcap-facts", facts_silent=True))
    assert "facts_silent" not in already and "no_facts_constrain" in already
    assert set(candidates(RunConfig.from_preset("medcap-facts"), ablations=False)) == {""}
