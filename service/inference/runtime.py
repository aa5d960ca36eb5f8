"""The batch-first inference runtime: the one module that calls onnxruntime.

A `ModelRuntime` holds one `InferenceSession` per graph of a verified version folder (see
docs/artifacts.md), created once and shared by every request: `InferenceSession.run` is
thread-safe. Every public method takes an n × d batch and returns arrays; validation raises
`InvalidInput` with a message that names the row and the dimension the model expects.

The `*_async` methods do the same for coroutines: they validate on the caller's thread, then hand
the rows to the version's `DynamicBatcher`, which merges concurrent requests into one session run
on a worker thread (see service/inference/batching.py).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.errors import CorruptVersion, InvalidInput
from service.inference.batching import DynamicBatcher

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger("aeserve.runtime")

FloatArray = npt.NDArray[np.float32]

GRAPHS = ("autoencoder", "encoder", "decoder")
# The tensor names the artifact format fixes; the runtime feeds and fetches exactly these.
REQUIRED_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "autoencoder": (("x",), ("codes", "reconstructions", "scores", "feature_errors")),
    "encoder": (("x",), ("codes",)),
    "decoder": (("codes",), ("reconstructions",)),
}
_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def resolve_providers(requested: Literal["cpu", "cuda"]) -> tuple[str, ...]:
    """onnxruntime providers for a setting; CUDA only when this onnxruntime build has it."""
    if requested == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        logger.warning(
            "providers=cuda was asked for but this onnxruntime has no CUDAExecutionProvider "
            "(install onnxruntime-gpu); running on the CPU"
        )
    return ("CPUExecutionProvider",)


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are built and how large a batch may be."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    max_batch: int = 8192
    dynamic_batching: bool = True
    max_batch_rows: int = 256
    max_queue_delay_us: int = 0
    batch_workers: int = 2
    cpu_mem_arena: bool = True
    mem_pattern: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeOptions:
        return cls(
            providers=resolve_providers(settings.providers),
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization=settings.graph_optimization,
            max_batch=settings.max_batch,
            dynamic_batching=settings.dynamic_batching,
            max_batch_rows=settings.max_batch_rows,
            max_queue_delay_us=settings.max_queue_delay_us,
            batch_workers=settings.batch_workers,
            cpu_mem_arena=settings.cpu_mem_arena,
            mem_pattern=settings.mem_pattern,
        )

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.graph_optimization_level = _OPTIMIZATION[self.graph_optimization]
        options.enable_cpu_mem_arena = self.cpu_mem_arena
        options.enable_mem_pattern = self.mem_pattern
        options.log_severity_level = 3  # errors only: warnings would repeat on every load
        return options


# -- validation ---------------------------------------------------------------------------------


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _describe(value: Any) -> str:
    if not isinstance(value, numbers.Real):  # e.g. None, which NumPy turns into NaN
        return repr(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:g}, beyond the float32 range"


def vectors_from_rows(
    rows: Sequence[Sequence[float]], expected_dim: int, model_label: str, what: str = ""
) -> FloatArray:
    """Lists of rows (as JSON gives them) → an n × expected_dim float32 array.

    Row lengths are checked first so a ragged batch gets a message naming its first short or
    long row; finiteness and the batch size are left to `ModelRuntime.check_vectors`.
    """
    try:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    except TypeError:
        i = next(i for i, row in enumerate(rows) if not hasattr(row, "__len__"))
        raise InvalidInput(f"row {i} is not a list of numbers") from None
    wrong = np.flatnonzero(lengths != expected_dim)
    if wrong.size:
        i = int(wrong[0])
        raise InvalidInput(
            f"row {i} has {_values(int(lengths[i]))}; {model_label} expects {expected_dim}{what}"
        )
    try:
        with np.errstate(over="ignore"):
            array = np.array(rows, dtype=np.float32)
    except (TypeError, ValueError):
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if not isinstance(value, numbers.Real):
                    raise InvalidInput(
                        f"row {i}, column {j} is {value!r}; values must be finite numbers"
                    ) from None
        raise
    return array.reshape(len(rows), expected_dim)


def check_batch(
    batch: npt.ArrayLike, expected_dim: int, max_batch: int, model_label: str, what: str = ""
) -> FloatArray:
    """A validated C-contiguous float32 n × expected_dim copy (or view) of `batch`."""
    rows = None
    if isinstance(batch, list | tuple):
        rows = [batch] if batch and isinstance(batch[0], numbers.Real) else batch
        batch = vectors_from_rows(rows, expected_dim, model_label, what)
    array = np.asarray(batch)
    if array.ndim == 1:  # a single vector is a batch of one
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInput(
            f"expected a 2-D array of shape (n, {expected_dim}); got shape {array.shape}"
        )
    n, d = array.shape
    if n == 0:
        raise InvalidInput("batch is empty")
    if n > max_batch:
        raise InvalidInput(f"batch has {n} rows; the limit is {max_batch}")
    if d != expected_dim:
        raise InvalidInput(f"row 0 has {_values(d)}; {model_label} expects {expected_dim}{what}")
    if array.dtype.kind == "O":  # mixed Python objects: numbers pass, None becomes NaN
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("values must be finite numbers") from None
    elif array.dtype.kind not in "biuf":  # strings, complex numbers, dates...
        raise InvalidInput(f"values must be finite numbers; got {array.dtype} data")
    if array.dtype == np.float32 and array.flags.c_contiguous:
        result = array
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.ascontiguousarray(array, dtype=np.float32)
    # One reduction first: a sum is finite unless some value is not (or finite ones overflow it,
    # which the exact check below then clears). Only then the elementwise check that names a cell.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(result, axis=None)
    if np.isfinite(total):
        return result
    finite = np.isfinite(result)
    if not finite.all():
        i, j = (int(k) for k in np.argwhere(~finite)[0])
        value = rows[i][j] if rows is not None else array[i, j]
        raise InvalidInput(
            f"row {i}, column {j} is {_describe(value)}; values must be finite numbers"
        )
    return result


# -- the runtime --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    scores: npt.NDArray[np.float32]
    """(n,) the model's training loss of each row; higher is more anomalous."""
    threshold: float
    anomalies: npt.NDArray[np.bool_]
    """(n,) scores > threshold."""
    p_values: npt.NDArray[np.float64]
    """(n,) conformal: (1 + #{calibration scores ≥ s}) / (n_cal + 1)."""
    feature_errors: npt.NDArray[np.float32] | None
    """(n, d) per-feature losses, when asked for."""


class ModelRuntime:
    """One loaded model version: its manifest, calibration scores and three sessions."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        sessions: dict[str, ort.InferenceSession],
        calibration: FloatArray,
        options: RuntimeOptions,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.version: int = manifest["version"]
        self.input_dim: int = manifest["input_dim"]
        self.latent_dim: int = manifest["latent_dim"]
        self.threshold: float = float(manifest["threshold"])
        self.loss: str = manifest["loss"]
        self.calibration = calibration
        self.options = options
        self.providers: list[str] = sessions["autoencoder"].get_providers()
        self.label = f"model {self.name!r} v{self.version}"
        self._sessions = sessions
        self._checks: dict[str, Callable[[npt.ArrayLike], FloatArray]] = {
            "x": self.check_vectors,
            "codes": self.check_codes,
        }
        # One batcher per loaded version: a newer version gets its own, this one drains.
        self._batcher = DynamicBatcher(
            self._run_batch,
            max_rows=options.max_batch_rows,
            max_delay_s=options.max_queue_delay_us / 1e6,
            enabled=options.dynamic_batching,
            workers=options.batch_workers,
            name=f"aeserve-batcher-{self.name}-v{self.version}",
        )

    def __repr__(self) -> str:
        return f"<ModelRuntime {self.name} v{self.version}>"

    @classmethod
    def load(cls, folder: Path, options: RuntimeOptions) -> ModelRuntime:
        """Load a version folder that the repository has verified; `CorruptVersion` if unusable."""
        folder = Path(folder)
        manifest = _read_manifest(folder)
        label = f"model {manifest['name']!r} v{manifest['version']}"
        calibration = _read_calibration(folder, manifest, label)
        session_options = options.session_options()
        sessions = {}
        for graph in GRAPHS:
            spec = manifest["graphs"].get(graph)
            if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
                raise CorruptVersion(f"{label}: the manifest does not describe the {graph} graph")
            path = folder / spec["file"]
            try:
                session = ort.InferenceSession(
                    str(path), sess_options=session_options, providers=list(options.providers)
                )
            except Exception as exc:  # onnxruntime's errors share no base class below Exception
                raise CorruptVersion(f"{label}: {spec['file']} cannot be loaded: {exc}") from exc
            _check_session(session, graph, spec, manifest, label)
            sessions[graph] = session
        return cls(folder, manifest, sessions, calibration, options)

    # -- validation ------------------------------------------------------------------------

    def check_vectors(self, x: npt.ArrayLike) -> FloatArray:
        """n × input_dim float32, C-contiguous; `InvalidInput` naming the first bad row."""
        return check_batch(x, self.input_dim, self.options.max_batch, self.label)

    def check_codes(self, z: npt.ArrayLike) -> FloatArray:
        """n × latent_dim float32, C-contiguous; `InvalidInput` naming the first bad row."""
        return check_batch(
            z, self.latent_dim, self.options.max_batch, self.label, " (its latent dimension)"
        )

    # -- inference ---------------------------------------------------------------------------

    def encode(self, x: npt.ArrayLike) -> FloatArray:
        """n × d → n × k codes z = f(x)."""
        (codes,) = self._run("encoder", ["codes"], {"x": self.check_vectors(x)})
        return codes

    def decode(self, z: npt.ArrayLike) -> FloatArray:
        """n × k codes → n × d reconstructions g(z), in the input's units."""
        (reconstructions,) = self._run(
            "decoder", ["reconstructions"], {"codes": self.check_codes(z)}
        )
        return reconstructions

    def reconstruct(self, x: npt.ArrayLike) -> FloatArray:
        """n × d → n × d reconstructions g(f(x)), in one session run."""
        (reconstructions,) = self._run(
            "autoencoder", ["reconstructions"], {"x": self.check_vectors(x)}
        )
        return reconstructions

    def score(
        self, x: npt.ArrayLike, threshold: float | None = None, explain: bool = False
    ) -> ScoreResult:
        """Anomaly scores, flags against `threshold` (default: the calibrated one), p-values."""
        threshold = self._threshold(threshold)
        outputs = ["scores", "feature_errors"] if explain else ["scores"]
        results = self._run("autoencoder", outputs, {"x": self.check_vectors(x)})
        return self._score_result(results, threshold)

    def _threshold(self, threshold: float | None) -> float:
        if threshold is None:
            return self.threshold
        if not math.isfinite(threshold):
            raise InvalidInput("threshold must be a finite number")
        return float(threshold)

    def _score_result(self, results: Sequence[FloatArray], threshold: float) -> ScoreResult:
        scores: npt.NDArray[np.float32] = results[0].reshape(-1)
        n_cal = self.calibration.size
        at_least = n_cal - self.calibration.searchsorted(scores, side="left")
        return ScoreResult(
            scores=scores,
            threshold=threshold,
            anomalies=scores > threshold,
            p_values=((1.0 + at_least) / (n_cal + 1.0)).astype(np.float64),
            feature_errors=results[1] if len(results) > 1 else None,
        )

    def infer(
        self, graph: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run one graph by tensor names (for the Open Inference Protocol); [] means all outputs."""
        wanted, feeds = self._plan(graph, inputs, outputs)
        return dict(zip(wanted, self._run(graph, wanted, feeds), strict=True))

    def _plan(
        self, graph: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
    ) -> tuple[list[str], dict[str, FloatArray]]:
        """The outputs to fetch and the validated feeds of an `infer` call."""
        session = self._sessions.get(graph)
        if session is None:
            raise InvalidInput(f"{self.label} has no graph {graph!r}; it has {', '.join(GRAPHS)}")
        expected_inputs, known_outputs = REQUIRED_IO[graph]
        for name in inputs:
            if name not in expected_inputs:
                raise InvalidInput(
                    f"unexpected input {name!r}; {graph} takes {', '.join(expected_inputs)}"
                )
        for name in expected_inputs:
            if name not in inputs:
                raise InvalidInput(f"{graph} needs input {name!r}")
        wanted = list(outputs) or list(known_outputs)
        for name in wanted:
            if name not in known_outputs:
                raise InvalidInput(
                    f"{graph} has no output {name!r}; it gives {', '.join(known_outputs)}"
                )
        feeds = {name: self._checks[name](value) for name, value in inputs.items()}
        return wanted, feeds

    def _run(
        self, graph: str, outputs: list[str], feeds: dict[str, FloatArray]
    ) -> list[FloatArray]:
        # Only the named outputs are computed and copied out: scoring skips feature_errors.
        results: list[FloatArray] = self._sessions[graph].run(outputs, feeds)
        return results

    # -- the same, batched with concurrent requests ----------------------------------------------

    async def encode_async(self, x: npt.ArrayLike) -> FloatArray:
        """`encode`, merged with concurrent requests into one session run off the event loop."""
        (codes,) = await self._batcher.submit(("encoder", ("codes",)), self.check_vectors(x))
        return codes

    async def decode_async(self, z: npt.ArrayLike) -> FloatArray:
        """`decode`, batched like `encode_async`."""
        key = ("decoder", ("reconstructions",))
        (reconstructions,) = await self._batcher.submit(key, self.check_codes(z))
        return reconstructions

    async def reconstruct_async(self, x: npt.ArrayLike) -> FloatArray:
        """`reconstruct`, batched like `encode_async`."""
        key = ("autoencoder", ("reconstructions",))
        (reconstructions,) = await self._batcher.submit(key, self.check_vectors(x))
        return reconstructions

    async def score_async(
        self, x: npt.ArrayLike, threshold: float | None = None, explain: bool = False
    ) -> ScoreResult:
        """`score`, batched like `encode_async`; thresholds and p-values stay per request."""
        threshold = self._threshold(threshold)
        key = ("autoencoder", ("scores", "feature_errors") if explain else ("scores",))
        results = await self._batcher.submit(key, self.check_vectors(x))
        return self._score_result(results, threshold)

    async def infer_async(
        self, graph: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """`infer`, batched like `encode_async` (each graph has exactly one input)."""
        wanted, feeds = self._plan(graph, inputs, outputs)
        (rows,) = feeds.values()
        results = await self._batcher.submit((graph, tuple(wanted)), rows)
        return dict(zip(wanted, results, strict=True))

    def _run_batch(self, key: Hashable, rows: FloatArray) -> list[FloatArray]:
        """The batcher's call: `key` is (graph, output names), `rows` the graph's one input."""
        graph, outputs = cast(tuple[str, tuple[str, ...]], key)
        (input_name,) = REQUIRED_IO[graph][0]
        return self._run(graph, list(outputs), {input_name: rows})


# -- loading helpers ----------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict[str, Any]:
    where = f"version folder {str(folder)!r}"
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CorruptVersion(f"{where}: manifest.json cannot be read: {exc}") from exc
    expected: dict[str, type | tuple[type, ...]] = {
        "name": str,
        "version": int,
        "input_dim": int,
        "latent_dim": int,
        "loss": str,
        "threshold": (int, float),
        "graphs": dict,
    }
    for key, kind in expected.items():
        if not isinstance(manifest, dict) or not isinstance(manifest.get(key), kind):
            raise CorruptVersion(f"{where}: manifest.json lacks a valid {key!r}")
    if manifest["loss"] not in ("mse", "bce"):
        raise CorruptVersion(f"{where}: unknown loss {manifest['loss']!r}")
    if not math.isfinite(manifest["threshold"]):
        raise CorruptVersion(f"{where}: the threshold is not a finite number")
    result: dict[str, Any] = manifest
    return result


def _read_calibration(folder: Path, manifest: dict[str, Any], label: str) -> FloatArray:
    summary = manifest.get("calibration")
    file_name = summary.get("file", "calibration.npy") if isinstance(summary, dict) else None
    if not isinstance(file_name, str):
        raise CorruptVersion(f"{label}: the manifest does not name a calibration file")
    try:
        scores = np.load(folder / file_name, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorruptVersion(f"{label}: {file_name} cannot be read: {exc}") from exc
    if scores.ndim != 1 or scores.dtype.kind != "f" or not np.isfinite(scores).all():
        raise CorruptVersion(f"{label}: {file_name} must hold a 1-D array of finite scores")
    # Sorted once here so every p-value is a binary search.
    calibration: FloatArray = np.sort(scores.astype(np.float32))
    return calibration


def _check_session(
    session: ort.InferenceSession,
    graph: str,
    spec: dict[str, Any],
    manifest: dict[str, Any],
    label: str,
) -> None:
    """The graph's tensors must be the manifest's, the format's, and of the manifest's widths."""
    file_name = spec["file"]
    inputs = {t.name: t for t in session.get_inputs()}
    outputs = {t.name: t for t in session.get_outputs()}
    for kind, found in (("inputs", inputs), ("outputs", outputs)):
        listed = spec.get(kind)
        if not isinstance(listed, list) or set(listed) != set(found):
            raise CorruptVersion(
                f"{label}: {file_name} has {kind} {sorted(found)}; the manifest lists {listed}"
            )
    required_inputs, required_outputs = REQUIRED_IO[graph]
    if sorted(inputs) != sorted(required_inputs):
        raise CorruptVersion(
            f"{label}: {file_name} must take exactly {list(required_inputs)}; "
            f"it takes {sorted(inputs)}"
        )
    for name in required_outputs:
        if name not in outputs:
            raise CorruptVersion(f"{label}: {file_name} lacks output {name!r}")
    widths = {
        "x": ("input_dim", manifest["input_dim"]),
        "codes": ("latent_dim", manifest["latent_dim"]),
        "reconstructions": ("input_dim", manifest["input_dim"]),
        "feature_errors": ("input_dim", manifest["input_dim"]),
    }
    for tensor in (*inputs.values(), *outputs.values()):
        if tensor.type != "tensor(float)":
            raise CorruptVersion(f"{label}: {file_name}: {tensor.name!r} is {tensor.type}")
        shape = tensor.shape
        if tensor.name not in widths or not isinstance(shape, list) or len(shape) != 2:
            continue
        field, width = widths[tensor.name]
        # Only a fixed width can contradict the manifest; the batch dimension is dynamic.
        if isinstance(shape[1], int) and shape[1] != width:
            raise CorruptVersion(
                f"{label}: {file_name} has {tensor.name!r} with {shape[1]} columns; "
                f"the manifest's {field} is {width}"
            )
