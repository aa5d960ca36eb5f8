"""/models: list, describe, read a manifest, promote and delete versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from core.manifest import Manifest
from service.http import catalog
from service.http.deps import AdminKey, RegistryDep, RepositoryDep
from service.http.schemas import ErrorResponse, ModelDetail, ModelList, PromoteResponse

router = APIRouter(prefix="/models", tags=["models"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 404, 409)
}
VersionPath = Path(ge=1, description="Version number.")


@router.get("", response_model=ModelList)
def list_models(repository: RepositoryDep, registry: RegistryDep) -> ModelList:
    """Every model with its versions, active version and dimensions."""
    return catalog.list_models(repository, registry)


@router.get("/{name}", response_model=ModelDetail, responses=_ERRORS)
def get_model(name: str, repository: RepositoryDep, registry: RegistryDep) -> ModelDetail:
    """One model and a summary of each of its versions."""
    return catalog.describe_model(repository, registry, name)


@router.get(
    "/{name}/versions/{version}",
    response_model=Manifest,
    # Exactly the fields manifest.json holds, unknown ones included: no defaults filled in.
    response_model_exclude_unset=True,
    responses=_ERRORS,
    dependencies=[AdminKey],  # the training data's statistics and config: stored data
)
def get_version(name: str, repository: RepositoryDep, version: int = VersionPath) -> Manifest:
    """The version's manifest: config, scaling, threshold, calibration, metrics, checksums."""
    return repository.manifest(name, version)


@router.post(
    "/{name}/versions/{version}/promote",
    response_model=PromoteResponse,
    responses=_ERRORS,
    dependencies=[AdminKey],
)
async def promote(name: str, registry: RegistryDep, version: int = VersionPath) -> PromoteResponse:
    """Verify and load this version, then make it active: this process serves it when the answer
    comes, every other within the reload interval. 409 (naming the file) for a version whose files
    fail their checksums or cannot be loaded; nothing changes then."""
    return await run_in_threadpool(catalog.promote, registry, name, version)


@router.delete(
    "/{name}/versions/{version}", status_code=204, responses=_ERRORS, dependencies=[AdminKey]
)
def delete_version(name: str, repository: RepositoryDep, version: int = VersionPath) -> Response:
    """Delete a version that is not the active one (409 for the active one)."""
    repository.delete(name, version)
    return Response(status_code=204)
