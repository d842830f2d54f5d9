"""medcap: medical image captioning research toolkit (CNN + BiLSTM + attention).

Importing the package is cheap: TensorFlow is imported lazily by the modules that need it,
so the dashboard and the data tools start fast.
"""

__version__ = "0.1.0"
