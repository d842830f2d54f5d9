"""Experiments that train and then evaluate runs (grid search): the layer above `medcap.train` and `medcap.eval`."""
