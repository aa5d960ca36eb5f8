"""Opening the model repository and the dataset store the settings name: folders, or an
S3-compatible object store (core/object_store.py)."""

from __future__ import annotations

from typing import Any

from core.datasets import DatasetStore
from core.object_store import StoreLocation, open_store
from core.repository import ModelRepository, Repository
from core.settings import Settings

DATASETS = ".datasets"
"""The datasets' folder (or prefix) inside the repository."""


def open_repository(settings: Settings) -> Repository:
    if not settings.repository_in_store:
        return ModelRepository(settings.model_repository)
    from core.object_repository import ObjectStoreRepository

    location = StoreLocation.parse(settings.model_repository)
    store = open_store(location, settings.store_endpoint, settings.store_timeout_s)
    return ObjectStoreRepository(store, location, settings.cache_dir / "models")


def open_datasets(settings: Settings, **options: Any) -> DatasetStore:
    """Datasets beside the models: the same folder, or the same store under `.datasets/` (an
    explicit AESERVE_DATA_DIR is a folder either way). `options` go to the store as they are."""
    if not settings.repository_in_store or settings.data_dir is not None:
        return DatasetStore(settings.datasets_path, **options)
    from core.object_datasets import ObjectDatasetStore

    location = StoreLocation.parse(settings.model_repository)
    store = open_store(location, settings.store_endpoint, settings.store_timeout_s, DATASETS)
    return ObjectDatasetStore(settings.datasets_path, store, f"{location}/{DATASETS}", **options)
