"""What the /models routes report: the repository's view joined with what this process serves."""

from __future__ import annotations

from core.errors import Conflict, CorruptVersion
from core.manifest import Manifest
from core.repository import Repository
from service.http.schemas import (
    ModelDetail,
    ModelList,
    ModelSummary,
    PromoteResponse,
    VersionSummary,
)
from service.inference.registry import ModelRegistry


def _manifest(repository: Repository, name: str, version: int | None) -> Manifest | None:
    """A version whose manifest is corrupt is still listed, with what it would say left out."""
    if version is None:
        return None
    try:
        return repository.manifest(name, version)
    except CorruptVersion:
        return None


def _summary(repository: Repository, registry: ModelRegistry, name: str) -> ModelSummary:
    versions = repository.versions(name)
    active = repository.active_version(name)
    manifests = {version: _manifest(repository, name, version) for version in versions}
    manifest = manifests.get(active) if active is not None else None
    loaded = {runtime.name: runtime.version for runtime in registry.loaded()}
    return ModelSummary(
        name=name,
        versions=versions,
        active_version=active,
        input_dim=manifest.input_dim if manifest else None,
        latent_dim=manifest.latent_dim if manifest else None,
        loss=manifest.loss if manifest else None,
        loaded_version=loaded.get(name),
        feature_names=manifest.feature_names if manifest else None,
        version_details=[_version(version, manifests[version], active) for version in versions],
    )


def _version(version: int, manifest: Manifest | None, active: int | None) -> VersionSummary:
    if manifest is None:
        return VersionSummary(version=version, active=version == active)
    return VersionSummary(
        version=version,
        created_at=manifest.created_at.isoformat(),
        threshold=manifest.threshold,
        active=version == active,
        input_dim=manifest.input_dim,
        latent_dim=manifest.latent_dim,
        loss=manifest.loss,
        feature_names=manifest.feature_names,
    )


def list_models(repository: Repository, registry: ModelRegistry) -> ModelList:
    return ModelList(models=[_summary(repository, registry, n) for n in repository.names()])


def describe_model(repository: Repository, registry: ModelRegistry, name: str) -> ModelDetail:
    return ModelDetail(**_summary(repository, registry, name).model_dump())


def promote(registry: ModelRegistry, name: str, version: int) -> PromoteResponse:
    """Verify and load the version, then switch the active pointer and serve it here at once;
    other processes follow on their poll. A version that fails its checks is a 409 naming the
    file and the reason, and nothing changes."""
    try:
        registry.promote(name, version)
    except CorruptVersion as exc:
        raise Conflict(f"{exc.message}; v{version} was not promoted") from exc
    return PromoteResponse(name=name, active_version=version)
