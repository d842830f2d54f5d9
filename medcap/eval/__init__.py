"""Evaluation: caption metrics, bootstrap CIs, baselines, the paper's tables, run evaluation and comparison.

`metrics`, `bootstrap`, `baselines` and `paper` are pure (no TensorFlow); `evaluate` and `compare`
load runs and import TensorFlow through `medcap.train` / `medcap.model` only when called.
"""
