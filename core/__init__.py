"""aeserve's torch-free core: what the API process and the training process share.

The artifact manifest and its graph contract, the training configuration, data loading, the
input rules, the model repository, the dataset store, the job records and stores, the settings
and the error hierarchy. It imports neither `service` (FastAPI, onnxruntime) nor `models` (torch).
"""

__version__ = "0.1.0"
