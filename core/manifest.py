"""The artifact contract: what a published version holds and how its graphs are called.

`Manifest` is the one description of `manifest.json` (docs/artifacts.md): the exporter builds an
`ExportedManifest` and writes it with `write_manifest`; the repository completes it into a
`Manifest` when it publishes; the runtime, the catalog, the jobs and the CLI read it with
`read_manifest`, which turns any unreadable or invalid manifest into `CorruptVersion`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeFloat,
    PlainSerializer,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from core.config import Loss
from core.errors import CorruptVersion

FORMAT: Literal[1] = 1
MANIFEST = "manifest.json"
CALIBRATION = "calibration.npy"

GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "autoencoder": (("x",), ("codes", "reconstructions", "scores", "feature_errors")),
    "encoder": (("x",), ("codes",)),
    "decoder": (("codes",), ("reconstructions",)),
}
"""Each graph's input and output tensor names: the runtime feeds and fetches exactly these."""

GRAPHS = tuple(GRAPH_IO)


def _plain_file_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{name!r} is not a file name inside the version folder")
    return name


FileName = Annotated[str, AfterValidator(_plain_file_name)]
"""A plain name inside the version folder: never a path that could leave it."""
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FeatureName = Annotated[str, Field(min_length=1, max_length=256)]
"""A column's name: a CSV header cell, a parquet column, or one given to /train."""

Timestamp = Annotated[
    AwareDatetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]
"""ISO 8601 with its UTC offset, written as Python writes it ("2026-01-01T00:00:00+00:00")."""


def default_feature_names(dim: int) -> list[str]:
    return [f"x{j}" for j in range(dim)]


def check_feature_names(names: list[str], dim: int) -> list[str]:
    """One distinct, non-empty name per feature; `ValueError` saying which rule is broken."""
    if len(names) != dim:
        raise ValueError(f"feature_names has {len(names)} names; the data has {dim} features")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"feature_names: {name!r} names both feature {seen[name]} and feature {index}"
            )
        seen[name] = index
    return names


class Section(BaseModel):
    """A part of the manifest.

    Unknown fields are kept (`extra="allow"`), neither refused nor dropped: a version written by a
    newer exporter still loads in an older server, and GET /models/{name}/versions/{version}
    serves its manifest whole. Frozen, because one loaded manifest is shared by every request.
    """

    model_config = ConfigDict(extra="allow", frozen=True)


class GraphSpec(Section):
    file: FileName = Field(description="The ONNX file of the graph.")
    inputs: list[str] = Field(description="Input tensor names, as in GRAPH_IO.")
    outputs: list[str] = Field(description="Output tensor names: at least GRAPH_IO's.")


def default_graphs(graphs: tuple[str, ...] = GRAPHS, codes: bool = True) -> dict[str, GraphSpec]:
    """The graphs as the exporter writes them: `<graph>.onnx`, with GRAPH_IO's tensors.

    An imported version may have fewer: no decoder when its graph cannot be cut at the codes, and
    neither encoder, decoder nor a `codes` output when it has no code output at all.
    """
    specs = {}
    for graph in graphs:
        inputs, outputs = GRAPH_IO[graph]
        kept = [name for name in outputs if codes or name != "codes"]
        specs[graph] = GraphSpec(file=f"{graph}.onnx", inputs=list(inputs), outputs=kept)
    return specs


class ScalingSpec(Section):
    """`s = (x - offset) / scale`, then `clip(s, 0, 1)` when `clip` is set (inside the graphs)."""

    method: Literal["standard", "minmax", "none"]
    offset: list[FiniteFloat] = Field(description="One value per input feature.")
    scale: list[FiniteFloat] = Field(description="One non-zero value per input feature.")
    clip: bool

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: list[float]) -> list[float]:
        if 0.0 in scale:
            raise ValueError(f"a scale of 0 at feature {scale.index(0.0)}")
        return scale


class CalibrationSummary(Section):
    """The held-out scores the threshold and the p-values come from."""

    file: FileName = Field(default=CALIBRATION, description="Sorted float32 scores (.npy).")
    n: PositiveInt
    min: FiniteFloat
    mean: FiniteFloat
    median: FiniteFloat
    p90: FiniteFloat
    p99: FiniteFloat
    max: FiniteFloat


class EpochLoss(Section):
    epoch: PositiveInt
    train_loss: FiniteFloat
    val_loss: FiniteFloat


class TrainingSummary(Section):
    epochs_run: PositiveInt
    best_epoch: PositiveInt = Field(description="The epoch whose weights were exported.")
    train_loss: FiniteFloat
    val_loss: FiniteFloat
    history: list[EpochLoss]
    rows_train: PositiveInt
    rows_validation: PositiveInt
    seconds: NonNegativeFloat
    device: str | None = Field(default=None, description="Where it trained (cpu, cuda).")


class ParityCheck(Section):
    """The largest difference between each exported graph and PyTorch on the held-out rows."""

    max_abs_diff: NonNegativeFloat
    rows: PositiveInt
    rtol: NonNegativeFloat
    atol: NonNegativeFloat


class ToolVersions(Section):
    aeserve: str
    torch: str | None = None
    onnx: str | None = None
    onnxruntime: str | None = None
    opset: PositiveInt


Source = Literal["trained", "imported"]


class ImportSummary(Section):
    """Where an imported version came from: the user's file and how its graph was read."""

    file: str = Field(description="The name the file was given when it was imported.")
    format: Literal["onnx", "torchscript"]
    sha256: Sha256 = Field(description="Of the file as it was imported.")
    bytes: PositiveInt
    input: str = Field(description="The graph's input tensor, fed the scaled rows.")
    reconstructions: str = Field(description="The graph's output read as the reconstruction.")
    codes: str | None = Field(description="The graph's code output, if it has one.")
    batch: Literal["dynamic", "fixed"] = Field(
        description="`fixed`: the graph takes one row at a time; the wrapper loops over rows."
    )
    opset: PositiveInt = Field(description="The graph's ONNX opset, as imported.")
    rows_calibration: PositiveInt


class ExportedManifest(Section):
    """What the exporter writes into a version folder before the repository publishes it."""

    format: Literal[1] = Field(description="Bumped only for changes an older reader must refuse.")
    source: Source = Field(default="trained", description="Trained by aeserve, or imported.")
    created_at: Timestamp
    input_dim: PositiveInt = Field(description="d: the width of a row.")
    latent_dim: PositiveInt | None = Field(
        description="k: the width of the codes; null for an imported graph without codes."
    )
    loss: Loss = Field(description="The training loss, also the anomaly score.")
    config: dict[str, Any] = Field(
        description="Every TrainConfig field, resolved. Kept as data, not as TrainConfig, which "
        "forbids unknown fields: a newer trainer's knobs must not make a version unreadable."
    )
    scaling: ScalingSpec
    threshold: FiniteFloat = Field(description="The threshold_quantile of the held-out scores.")
    threshold_quantile: float = Field(gt=0, lt=1)
    calibration: CalibrationSummary
    training: TrainingSummary | None = Field(
        default=None, description="How it was trained; absent for an imported version."
    )
    parity: ParityCheck
    graphs: dict[str, GraphSpec] = Field(
        description="The graphs of GRAPH_IO; an imported version may lack the encoder and decoder."
    )
    versions: ToolVersions
    imported: ImportSummary | None = Field(
        default=None, description="The imported file; only for `source: imported`."
    )
    feature_names: list[FeatureName] | None = Field(
        default=None,
        description="One name per input feature, in column order: the CSV header, the parquet "
        "columns or /train's `feature_names`; absent when the data had none (older versions too).",
    )

    @field_validator("graphs")
    @classmethod
    def _graphs_keep_the_contract(
        cls, graphs: dict[str, GraphSpec], info: ValidationInfo
    ) -> dict[str, GraphSpec]:
        # An imported version may lack the encoder and decoder (see _complete_for_its_source).
        required = ("autoencoder",) if info.data.get("source") == "imported" else GRAPHS
        for graph, (inputs, outputs) in GRAPH_IO.items():
            spec = graphs.get(graph)
            if spec is None and graph in required:
                raise ValueError(f"the {graph} graph is missing")
            if spec is None:
                continue
            if sorted(spec.inputs) != sorted(inputs):
                raise ValueError(
                    f"the {graph} graph takes {spec.inputs}; GRAPH_IO says {list(inputs)}"
                )
            missing = [name for name in outputs if name not in spec.outputs and name != "codes"]
            if missing:
                raise ValueError(f"the {graph} graph lacks outputs {missing}")
        return graphs

    @model_validator(mode="after")
    def _complete_for_its_source(self) -> ExportedManifest:
        """A trained version has every graph; an imported one at least the autoencoder, and
        codes (an encoder, the `codes` output) exactly when it has a latent dimension."""
        if self.source == "trained":
            if self.training is None:
                raise ValueError("training: a trained version needs its training summary")
        elif self.imported is None:
            raise ValueError("imported: an imported version needs its import summary")
        has_codes = self.latent_dim is not None
        if has_codes != ("codes" in self.graphs["autoencoder"].outputs):
            raise ValueError(
                "the autoencoder graph must give `codes` exactly when latent_dim is set"
            )
        if "decoder" in self.graphs and "encoder" not in self.graphs:
            raise ValueError("the encoder graph is missing (a decoder needs one)")
        if not has_codes and "encoder" in self.graphs:
            raise ValueError("latent_dim: an encoder graph needs the width of its codes")
        return self

    @model_validator(mode="after")
    def _one_scaling_value_per_feature(self) -> ExportedManifest:
        for field in ("offset", "scale"):
            count = len(getattr(self.scaling, field))
            if count != self.input_dim:
                raise ValueError(
                    f"scaling.{field} has {count} values; input_dim is {self.input_dim}"
                )
        if self.feature_names is not None:
            check_feature_names(self.feature_names, self.input_dim)
        return self

    def names_of_features(self) -> list[str]:
        """The feature names, or `x0`, `x1`, … (scikit-learn's default) for data without."""
        if self.feature_names is not None:
            return list(self.feature_names)
        return default_feature_names(self.input_dim)

    def published(self, name: str, version: int, files: dict[str, str]) -> Manifest:
        """This manifest as the repository publishes it, with fields set exactly as here."""
        data = self.model_dump(exclude_unset=True)
        return Manifest.model_validate({**data, "name": name, "version": version, "files": files})


class Manifest(ExportedManifest):
    """A published version's manifest.json: the exporter's fields, then the repository's."""

    name: str = Field(min_length=1, description="Model name.")
    version: PositiveInt = Field(description="Version number, given by the repository.")
    files: dict[FileName, Sha256] = Field(
        description="sha256 of every file of the version except manifest.json."
    )


def dump_manifest(manifest: ExportedManifest) -> bytes:
    """manifest.json's bytes: the fields that were set, unknown ones included, and nothing else."""
    return (manifest.model_dump_json(indent=2, exclude_unset=True) + "\n").encode()


def write_manifest(manifest: ExportedManifest, folder: Path) -> None:
    (Path(folder) / MANIFEST).write_bytes(dump_manifest(manifest))


M = TypeVar("M", bound=ExportedManifest)


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a published version folder; `CorruptVersion` naming what is wrong."""
    return _read(folder, Manifest)


def read_exported_manifest(folder: Path) -> ExportedManifest:
    """The manifest the exporter wrote into a folder that is not published yet."""
    return _read(folder, ExportedManifest)


def _read(folder: Path, kind: type[M]) -> M:
    # OSError passes through: a file that cannot be read now may be readable later.
    text = (Path(folder) / MANIFEST).read_bytes()
    try:
        return kind.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors()[:5])
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise CorruptVersion(
            f"version folder {str(folder)!r}: {MANIFEST}: {problems}{more}"
        ) from exc


def _describe(error: ErrorDetails) -> str:
    loc = error["loc"]
    where = ".".join(str(part) for part in loc)
    if loc[-1:] == ("[key]",):  # a bad key of a mapping: "files key '..'", not "files....[key]"
        where = f"{'.'.join(str(part) for part in loc[:-2])} key {loc[-2]!r}"
    context = error.get("ctx") or {}
    # A validator's own message reads better without pydantic's "Value error, " prefix.
    message = str(context["error"]) if error["type"] == "value_error" else error["msg"]
    if error["type"] == "json_invalid":
        message = f"not valid JSON ({context.get('error', message)})"
    return f"{where}: {message}" if where else message


class ModelRef(BaseModel):
    name: str = Field(description="Model name.", examples=["digits"])
    version: int = Field(description="Model version that answered.", examples=[1])
