"""CNN image features: ImageNet backbones offline, a resumable float16 feature store, one-image featurizer.

`open_store`/`FeatureStore` need no TensorFlow; `ensure_features` and `ImageFeaturizer` import it
when first used (attributes resolve lazily, so `import medcap.features` stays cheap).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FeatureStore", "ImageFeaturizer", "ensure_features", "merge_stores", "open_store", "write_store"]

_WHERE = {
    "FeatureStore": "medcap.features.store",
    "open_store": "medcap.features.store",
    "write_store": "medcap.features.writer",
    "merge_stores": "medcap.features.merge",
    "ensure_features": "medcap.features.extract",
    "ImageFeaturizer": "medcap.features.featurizer",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'medcap.features' has no attribute {name!r}")
