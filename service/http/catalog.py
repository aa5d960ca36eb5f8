"""What the /models routes report: the repository's view joined with what this process serves."""

from __future__ import annotations

from typing import Any

from core.repository import ModelRepository
from service.http.schemas import (
    ModelDetail,
    ModelList,
    ModelSummary,
    PromoteResponse,
    VersionSummary,
)
from service.inference.registry import ModelRegistry


def _summary(repository: ModelRepository, registry: ModelRegistry, name: str) -> ModelSummary:
    versions = repository.versions(name)
    active = repository.active_version(name)
    manifest: dict[str, Any] = repository.manifest(name, active) if active in versions else {}
    loaded = {runtime.name: runtime.version for runtime in registry.loaded()}
    return ModelSummary(
        name=name,
        versions=versions,
        active_version=active,
        input_dim=manifest.get("input_dim"),
        latent_dim=manifest.get("latent_dim"),
        loss=manifest.get("loss"),
        loaded_version=loaded.get(name),
    )


def list_models(repository: ModelRepository, registry: ModelRegistry) -> ModelList:
    return ModelList(models=[_summary(repository, registry, n) for n in repository.names()])


def describe_model(repository: ModelRepository, registry: ModelRegistry, name: str) -> ModelDetail:
    summary = _summary(repository, registry, name)
    details = []
    for version in summary.versions:
        manifest = repository.manifest(name, version)
        details.append(
            VersionSummary(
                version=version,
                created_at=manifest.get("created_at"),
                threshold=manifest.get("threshold"),
                active=version == summary.active_version,
            )
        )
    return ModelDetail(**summary.model_dump(), version_details=details)


def promote(
    repository: ModelRepository, registry: ModelRegistry, name: str, version: int
) -> PromoteResponse:
    """Switch the active pointer, then reload here at once; other processes follow on their poll."""
    repository.promote(name, version)
    registry.refresh()
    return PromoteResponse(name=name, active_version=version)
