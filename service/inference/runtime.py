"""The batch-first inference runtime: the one module that runs onnxruntime sessions.

A `ModelRuntime` holds one `InferenceSession` per graph of a verified version folder (see
docs/artifacts.md and service/inference/loading.py), created once and shared by every request:
`InferenceSession.run` is thread-safe. Every public method takes an n × d batch and returns arrays;
validation (service/inference/validation.py) raises `InvalidInput` with a message that names the
row and the dimension the model expects.

The `*_async` methods validate on the caller's thread, then hand the rows to the version's
`DynamicBatcher`, which merges concurrent requests into one session run on a worker thread (see
service/inference/batching.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.errors import GraphUnavailable, InvalidInput
from core.manifest import GRAPH_IO, GRAPHS, Manifest
from service.inference.batching import DynamicBatcher
from service.inference.explanation import TopFeatures, top_features
from service.inference.finite import finite_output
from service.inference.options import RuntimeOptions
from service.inference.validation import FloatArray, check_batch


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
    top: TopFeatures | None = None
    """The k worst features of each row, when asked for."""


class ModelRuntime:
    """One loaded model version: its manifest, calibration scores and three sessions."""

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        sessions: dict[str, ort.InferenceSession],
        calibration: FloatArray,
        options: RuntimeOptions,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.input_dim = manifest.input_dim
        self.latent_dim = manifest.latent_dim
        self.threshold = manifest.threshold
        self.loss = manifest.loss
        self.feature_names = manifest.names_of_features()
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
            max_queued_rows=options.max_queued_rows,
            timeout_s=options.request_timeout_s,
            name=f"aeserve-batcher-{self.name}-v{self.version}",
            label=self.label,
        )

    def __repr__(self) -> str:
        return f"<ModelRuntime {self.name} v{self.version}>"

    # -- validation ------------------------------------------------------------------------

    def check_vectors(self, x: npt.ArrayLike) -> FloatArray:
        """n × input_dim float32, C-contiguous; `InvalidInput` naming the first bad row."""
        return check_batch(x, self.input_dim, self.options.max_batch, self.label)

    def check_codes(self, z: npt.ArrayLike) -> FloatArray:
        """n × latent_dim float32, C-contiguous; `InvalidInput` naming the first bad row."""
        return check_batch(
            z, self.codes_width(), self.options.max_batch, self.label, " (its latent dimension)"
        )

    def codes_width(self) -> int:
        """k, the width /decode takes; `GraphUnavailable` (409) for a version without a decoder."""
        self.require("decoder")
        assert self.latent_dim is not None  # a version with a decoder has codes
        return self.latent_dim

    def require(self, graph: str) -> None:
        """`GraphUnavailable` (409) when this version has no such graph: an imported autoencoder
        without a code output has no encoder nor decoder, one whose reconstruction does not
        depend on the input through the codes alone has no decoder."""
        if graph in self._sessions:
            return
        if graph == "encoder" or self.latent_dim is None:
            why = "it was imported from a graph without a code output (import it with --codes)"
        else:
            why = "its imported graph cannot be cut at the codes: the reconstruction also "
            why += "depends on the input by another path"
        raise GraphUnavailable(
            f"{self.label} has no {graph}: {why}; /score and /reconstruct serve it"
        )

    def outputs_of(self, graph: str) -> tuple[str, ...]:
        """The graph's outputs in GRAPH_IO's order: without `codes` for a version without."""
        self.require(graph)
        listed = self.manifest.graphs[graph].outputs
        return tuple(name for name in GRAPH_IO[graph][1] if name in listed)

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

    def _plan(
        self, graph: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
    ) -> tuple[list[str], dict[str, FloatArray]]:
        """The outputs to fetch and the validated feeds of an `infer` call."""
        if graph not in GRAPH_IO:
            raise InvalidInput(f"{self.label} has no graph {graph!r}; it has {', '.join(GRAPHS)}")
        expected_inputs, known_outputs = GRAPH_IO[graph][0], self.outputs_of(graph)
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
        session = self._sessions[graph]
        (rows,) = feeds.values()
        most = self.options.max_run_rows
        if len(rows) <= most:
            results: list[FloatArray] = session.run(outputs, feeds)
            return results
        # In pieces of at most `max_run_rows`: the memory of one call grows with its rows.
        (name,) = feeds
        pieces = [
            session.run(outputs, {name: rows[i : i + most]}) for i in range(0, len(rows), most)
        ]
        return [np.concatenate(parts) for parts in zip(*pieces, strict=True)]

    # -- inference, batched with concurrent requests --------------------------------------------

    async def encode_async(self, x: npt.ArrayLike) -> FloatArray:
        """n × d → n × k codes z = f(x), merged with concurrent requests into one session run
        off the event loop."""
        self.require("encoder")
        (codes,) = await self._batcher.submit(("encoder", ("codes",)), self.check_vectors(x))
        return finite_output(codes, "codes")

    async def decode_async(self, z: npt.ArrayLike) -> FloatArray:
        """n × k codes → n × d reconstructions g(z), in the input's units; batched like
        `encode_async`."""
        key = ("decoder", ("reconstructions",))
        (reconstructions,) = await self._batcher.submit(key, self.check_codes(z))
        return finite_output(reconstructions, "reconstructions")

    async def reconstruct_async(self, x: npt.ArrayLike) -> FloatArray:
        """n × d → n × d reconstructions g(f(x)), in one graph; batched like `encode_async`."""
        key = ("autoencoder", ("reconstructions",))
        (reconstructions,) = await self._batcher.submit(key, self.check_vectors(x))
        return finite_output(reconstructions, "reconstructions")

    async def score_async(
        self,
        x: npt.ArrayLike,
        threshold: float | None = None,
        explain: bool = False,
        top: int | None = None,
    ) -> ScoreResult:
        """Anomaly scores, flags against `threshold` (default: the calibrated one) and p-values,
        per request; with `explain` the feature errors, with `top` the `top` worst features of
        each row. The graph runs batched like `encode_async`."""
        threshold = self._threshold(threshold)
        if top is not None and top < 1:
            raise InvalidInput(f"top must be at least 1, not {top}")
        errors = explain or top is not None
        key = ("autoencoder", ("scores", "feature_errors") if errors else ("scores",))
        results = await self._batcher.submit(key, self.check_vectors(x))
        results = [finite_output(array, name) for array, name in zip(results, key[1], strict=True)]
        result = self._score_result(results, threshold)
        if top is None:
            return result
        assert result.feature_errors is not None  # fetched above
        return dataclasses.replace(
            result,
            top=top_features(result.feature_errors, top),
            feature_errors=result.feature_errors if explain else None,
        )

    async def infer_async(
        self, graph: str, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run one graph by tensor names (the Open Inference Protocol); [] means all outputs.
        Batched like `encode_async` (each graph has exactly one input)."""
        wanted, feeds = self._plan(graph, inputs, outputs)
        (rows,) = feeds.values()
        results = await self._batcher.submit((graph, tuple(wanted)), rows)
        return {
            name: finite_output(array, name) for name, array in zip(wanted, results, strict=True)
        }

    def _run_batch(self, key: Hashable, rows: FloatArray) -> list[FloatArray]:
        """The batcher's call: `key` is (graph, output names), `rows` the graph's one input."""
        graph, outputs = cast(tuple[str, tuple[str, ...]], key)
        (input_name,) = GRAPH_IO[graph][0]
        return self._run(graph, list(outputs), {input_name: rows})
