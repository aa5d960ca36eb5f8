"""How onnxruntime sessions are built and how requests are batched: the runtime's options, read
from the settings once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import onnxruntime as ort

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger("aeserve.runtime")

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
    max_run_rows: int = 1024
    max_queue_delay_us: int = 0
    batch_workers: int = 1
    max_queued_rows: int | None = 2048
    request_timeout_s: float | None = 10.0
    cpu_mem_arena: bool = False
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
            max_run_rows=settings.max_run_rows,
            max_queue_delay_us=settings.max_queue_delay_us,
            batch_workers=settings.batch_workers,
            max_queued_rows=settings.max_queued_rows,
            request_timeout_s=settings.request_timeout_s,
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
