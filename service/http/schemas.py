"""Request and response schemas, in pairs. Requests forbid unknown fields and non-finite numbers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.manifest import ModelRef
from core.vectors import FiniteFloat, Matrix

_VECTORS_EXAMPLE = [[0.0, 0.25, 0.5, 1.0]]


class Request(BaseModel):
    # Strict: a JSON value of another type is refused, not converted (`"explain": 0`, `"top":
    # "2"`), as the document's schema says.
    model_config = ConfigDict(extra="forbid", strict=True)


class VectorsRequest(Request):
    vectors: Matrix = Field(
        description="Batch of input rows (n × d). With an `application/x-npy` body, the array.",
        examples=[_VECTORS_EXAMPLE],
    )


class EncodeRequest(VectorsRequest):
    pass


class EncodeResponse(BaseModel):
    model: ModelRef
    codes: list[list[float]] = Field(description="Bottleneck codes z = f(x), n × k.")


class DecodeRequest(Request):
    codes: Matrix = Field(
        description="Batch of codes (n × k). With an `application/x-npy` body, the array.",
        examples=[[[0.1, -0.3]]],
    )


class ReconstructRequest(VectorsRequest):
    pass


class ReconstructionResponse(BaseModel):
    model: ModelRef
    reconstructions: list[list[float]] = Field(description="Reconstructions in input units, n × d.")


Threshold = Annotated[
    FiniteFloat | None,
    Field(description="Overrides the model's calibrated threshold for `anomalies`."),
]
Explain = Annotated[
    bool, Field(description="Also return per-feature losses and the features' names.")
]
Top = Annotated[
    int | None,
    Field(
        ge=1,
        description="Also return the k features of each row with the largest losses, worst "
        "first, by name and index (all of them when the model has fewer).",
    ),
]


class ScoreRequest(VectorsRequest):
    threshold: Threshold = None
    explain: Explain = False
    top: Top = None


class ScoreOptionFields(Request):
    """A /score body's fields besides its matrix, validated apart when simdjson reads the matrix."""

    threshold: Threshold = None
    explain: Explain = False
    top: Top = None


class FeatureError(BaseModel):
    feature: str = Field(description="The feature's name (`x0`, `x1`, … for unnamed data).")
    index: int = Field(description="Its column, from 0.")
    error: float = Field(description="Its loss in this row.")


class ScoreResponse(BaseModel):
    model: ModelRef
    scores: list[float] = Field(description="Reconstruction loss per row (the training loss).")
    threshold: float = Field(description="Threshold applied: calibrated, or the request's.")
    anomalies: list[bool] = Field(description="`scores[i] > threshold`.")
    p_values: list[float] = Field(
        description="Conformal p-values against the held-out calibration scores."
    )
    feature_errors: list[list[float]] | None = Field(
        default=None, description="Per-feature losses (n × d), with `explain: true`."
    )
    feature_names: list[str] | None = Field(
        default=None,
        description="The name of each column of `feature_errors` (`x0`, `x1`, … when the model "
        "was trained on unnamed data), with `explain` or `top`.",
    )
    top_features: list[list[FeatureError]] | None = Field(
        default=None, description="The `top` worst features of each row, worst first."
    )


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["row 3 has 12 values; model 'cardio' v2 expects 21"])


class VersionSummary(BaseModel):
    """What a version's manifest says in brief; null fields for a version whose manifest is
    corrupt."""

    version: int
    created_at: str | None = None
    threshold: float | None = None
    active: bool
    input_dim: int | None = None
    latent_dim: int | None = Field(
        default=None, description="k; null also for an imported graph without codes."
    )
    loss: str | None = None
    feature_names: list[str] | None = Field(
        default=None, description="The training data's column names, if it had any."
    )


class ModelSummary(BaseModel):
    name: str
    versions: list[int]
    active_version: int | None
    input_dim: int | None = None
    latent_dim: int | None = None
    loss: str | None = None
    loaded_version: int | None = Field(default=None, description="Version this process is serving.")
    feature_names: list[str] | None = Field(
        default=None, description="The active version's feature names, if its data had any."
    )
    version_details: list[VersionSummary] = Field(
        default_factory=list, description="Every version, oldest first, with its dimensions."
    )


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    pass


class PromoteResponse(BaseModel):
    name: str
    active_version: int


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    detail: str = Field(
        description="Why: which models are loaded, or that the repository has none yet.",
        examples=["1 model(s) loaded: digits"],
    )
