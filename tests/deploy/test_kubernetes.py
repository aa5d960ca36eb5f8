"""deploy/k8s: a kustomize base whose every object validates offline against the Kubernetes
schemas (kubernetes-validate bundles them), wired as docs/deployment.md says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.settings import Settings
from tests.deploy.parsing import REPO_ROOT

BASE = REPO_ROOT / "deploy" / "k8s"


def _kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return loaded


def _objects() -> list[dict[str, Any]]:
    return [
        document
        for resource in _kustomization()["resources"]
        for document in yaml.safe_load_all((BASE / resource).read_text())
        if document
    ]


def _named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_kustomization_lists_every_manifest() -> None:
    files = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(_kustomization()["resources"]) == sorted(files)


@pytest.mark.parametrize(
    "manifest", _objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}"
)
def test_each_object_validates_against_the_kubernetes_schema(manifest: dict[str, Any]) -> None:
    version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")


def _pod(deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = _named("Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def test_the_api_is_probed_on_readyz_and_healthz_and_scaled_by_an_hpa() -> None:
    (api,) = _pod("aeserve-api")["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["args"][:2] == ["aeserve", "serve"]
    hpa = _named("HorizontalPodAutoscaler", "aeserve-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "aeserve-api",
    }
    assert hpa["minReplicas"] >= 2
    (worker,) = _pod("aeserve-worker")["containers"]
    assert worker["args"] == ["aeserve", "worker"]


@pytest.mark.parametrize("deployment", ["aeserve-api", "aeserve-worker", "aeserve-redis"])
def test_every_pod_runs_as_non_root_with_requests_and_limits(deployment: str) -> None:
    pod = _pod(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        writable = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        if deployment != "aeserve-redis":
            assert {"/var/cache/aeserve", "/tmp"} <= writable


def test_settings_come_from_the_configmap_and_the_key_from_the_secret() -> None:
    settings = _named("ConfigMap", "aeserve-settings")["data"]
    secret = _named("Secret", "aeserve-secrets")["stringData"]
    assert "AESERVE_API_KEY" in secret and "AESERVE_API_KEY" not in settings
    assert settings["AESERVE_MODEL_REPOSITORY"].startswith("s3://")
    fields = {f"AESERVE_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in settings if k.startswith("AESERVE_")} <= fields
    parsed = Settings.model_validate(
        {
            k.removeprefix("AESERVE_").lower(): v
            for k, v in settings.items()
            if k.startswith("AESERVE_")
        }
    )
    assert parsed.cache_dir == Path("/var/cache/aeserve")
    for deployment in ("aeserve-api", "aeserve-worker"):
        (container,) = _pod(deployment)["containers"]
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"aeserve-settings", "aeserve-secrets"}
    assert "6379" in settings["AESERVE_BROKER_URL"]
    assert settings["AESERVE_BROKER_URL"].split("//")[1].split(":")[0] == "aeserve-redis"
