"""The artifact contract: what a published version holds and how its graphs are called
(docs/artifacts.md). The exporter writes it; the runtime, the catalog and the jobs read it."""

from __future__ import annotations

from pydantic import BaseModel, Field

MANIFEST = "manifest.json"
CALIBRATION = "calibration.npy"

GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "autoencoder": (("x",), ("codes", "reconstructions", "scores", "feature_errors")),
    "encoder": (("x",), ("codes",)),
    "decoder": (("codes",), ("reconstructions",)),
}
"""Each graph's input and output tensor names: the runtime feeds and fetches exactly these."""

GRAPHS = tuple(GRAPH_IO)


class ModelRef(BaseModel):
    name: str = Field(description="Model name.", examples=["digits"])
    version: int = Field(description="Model version that answered.", examples=[1])
