"""The one settings class: every knob of the service, read from `AESERVE_*` variables."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config import MAX_PARAMETERS
from core.dataset_limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DatasetLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AESERVE_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface `aeserve serve` binds to."""
    port: int = 8000
    """TCP port `aeserve serve` listens on."""
    workers: int = Field(default=1, ge=1)
    """Number of uvicorn worker processes; each loads every model and reloads on its own."""
    metrics_dir: Path | None = None
    """Folder where each API process writes its metrics for /metrics to merge (prometheus_client's
    multiprocess files), so counters add up across workers. `aeserve serve --workers N` (N > 1)
    makes a fresh one when unset, and empties this one when set; unset with one worker, each
    process answers from memory."""
    metrics_version_ttl_s: float = Field(default=600.0, ge=0)
    """The request series of a model version this process no longer serves (neither active nor
    cached) leave /metrics this long after it stopped serving it, so promotions do not add
    series forever."""
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    """An open connection with no request in progress is closed after this long, a new one
    included."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A request's head must arrive within this long of its first byte; else 408 and closed."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """A request's body must arrive within this long of its head; else 408 and closed (64 MiB in
    30 s is about 18 Mbit/s)."""
    max_concurrency: int | None = Field(default=1000, ge=1)
    """Most open connections or requests in progress per process; beyond it uvicorn answers 503
    at once (unset: no limit)."""
    model_repository: str = "model-repository"
    """Model repository: a folder (`<name>/<version>/…`) shared by API processes and workers, or
    `s3://bucket/prefix` on an S3-compatible object store (credentials, region and endpoint from
    the usual `AWS_*` variables), which API processes and workers on any host share."""
    cache_dir: Path = Path("model-cache")
    """With an `s3://` repository: this process's verified copies of the versions it serves, its
    staging folder, its copies of datasets and (local job backend) its job database."""
    store_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "store_endpoint", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"
        ),
    )
    """The object store's URL when it is not AWS S3 (MinIO, Ceph RGW, GCS), from the usual
    `AWS_ENDPOINT_URL` variable; an `http://` URL is allowed (a store on a private network)."""
    store_timeout_s: float = Field(default=5.0, gt=0)
    """Most time one object-store call may take, retries included; an unreachable store fails a
    call within it (the API keeps serving what it has cached)."""
    default_model: str | None = None
    """Model used when a request names none; unset means the only model in the repository."""
    providers: Literal["cpu", "cuda"] = "cpu"
    """onnxruntime provider; `cuda` falls back to the CPU, with a warning, when unavailable."""
    intra_op_threads: int = Field(default=1, ge=0)
    """onnxruntime threads per session for one operator (0 lets onnxruntime decide)."""
    inter_op_threads: int = Field(default=1, ge=0)
    """onnxruntime threads per session across operators (0 lets onnxruntime decide)."""
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    """onnxruntime graph optimisation level."""
    max_batch: int = Field(default=8192, ge=1)
    """Most rows one request may carry."""
    dynamic_batching: bool = True
    """Merge concurrent inference requests for one model version into one onnxruntime call.
    Off, the same worker threads run each request as its own call."""
    max_batch_rows: int = Field(default=256, ge=1)
    """Most rows the dynamic batcher merges into one onnxruntime call; a larger request runs
    alone, unsplit."""
    max_run_rows: int = Field(default=1024, ge=1)
    """Most rows in one onnxruntime call: a larger request runs as consecutive calls of at most
    this many rows, so the memory of one call stays bounded whatever the request's size. The
    scoring graph's neighbour distances take 4 bytes per row and reference point (16 KB per row
    with 4,000) and about 100 bytes per row and feature for the nearest references: at 8
    features one call of 8,192 rows grew the process by 132 MB, of 1,024 by 34 MB; at 784
    features a call of 1,024 rows by 76 MB, of 256 by 42 MB."""
    max_queue_delay_us: int = Field(default=0, ge=0)
    """How long the batcher holds a request waiting for more to fill the batch. 0 runs at once
    with whatever queued up while the previous batch ran, which already batches under load."""
    batch_workers: int = Field(default=1, ge=1)
    """Most threads per model version running merged batches. Another starts only while all are
    busy and half of `max_batch_rows` is waiting, so large requests use spare cores and small
    ones keep being merged. One by default: on the serving benchmark a second thread gained
    nothing at batch 1 and 64 and cost a share of the event loop's core
    (bench/results/serving.md); more processes (`--workers`) scale batch-1 traffic instead."""
    max_queued_rows: int | None = Field(default=2048, ge=1)
    """Most rows waiting per model version for the batcher; a request beyond it gets 503 with
    `Retry-After` at once instead of a place in a queue that only grows (unset: no bound). A
    request that finds nothing waiting is taken whatever its size."""
    max_inference_in_progress: int | None = Field(default=128, ge=1)
    """Most inference requests per process being worked on (body received, not yet answered);
    beyond it a request gets 503 with `Retry-After` as soon as its head arrives
    (service/http/admission.py: the server skips a body of up to 1 MiB unread, keeping the
    connection, and closes it on a larger one) (unset: no bound). Requests in progress share
    one event loop, so each waits in proportion to their number: the bound keeps latency short
    when more arrive than the server can answer."""
    inference_latency_target_ms: float | None = Field(default=25.0, gt=0)
    """Under overload, the bound on inference requests in progress comes down to as many as the
    server answers in this long, at the rate it answers them (service/http/concurrency_limit.py),
    and goes back up to `max_inference_in_progress` once nothing is refused (unset: the bound is
    fixed). Only a bound that refuses requests moves: traffic under the ceiling never meets it."""
    request_timeout_s: float | None = Field(default=10.0, gt=0)
    """Deadline of an inference request once its rows are queued: past it the client gets 504
    and its rows leave the queue if they have not started (unset: no deadline)."""
    cpu_mem_arena: bool = False
    """onnxruntime's CPU memory arena: buffers kept by each session between runs instead of
    taken from malloc. Off by default: with it on, a server through version swaps under traffic
    grew by 2-3 MB with each swap (no session left alive) and stayed flat with it off, and malloc
    with fixed thresholds (core/heap.py) reuses the same buffers at a cost of a few percent
    (bench/results/serving.md)."""
    mem_pattern: bool = True
    """onnxruntime's memory pattern: allocations planned once per input shape and reused."""
    inference_fast_lane: bool = True
    """Serve well-formed inference requests without FastAPI's routing and dependency solving
    (same endpoint code, same answers; see service/http/fastlane.py). Off: every request takes the
    FastAPI route."""
    opentelemetry: bool = False
    """FastAPI's own OpenTelemetry spans, metrics and logs, once an OpenTelemetry provider is
    configured. Off, the service reports through its Prometheus metrics only: FastAPI looks for a
    provider on every request, which cost a batch-1 /score about a tenth of its event-loop time
    (bench/fastlane.py)."""
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body accepted; bigger bodies get 413 before they are read."""
    max_train_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest POST /train body, inline rows included (413 beyond it): its JSON is validated
    holding Python's GIL, which stalls every request for as long. Larger data goes up once with
    POST /datasets and is named by `data.dataset`."""
    inline_body_bytes: int = Field(default=256 * 1024, ge=0)
    """JSON bodies up to this size are decoded on the event loop (a thread hop costs a small body
    more than its decoding); larger ones on a thread, so no request holds the others up while its
    body is parsed. A `.npy` body and a v2 body's binary section are views of the bytes, whatever
    their size, so they never need the hop."""
    decode_threads: int = Field(default=2, ge=1)
    """Most large bodies decoded at once per process; the others wait for a thread."""
    process_body_bytes: int = Field(default=1024 * 1024, ge=0)
    """JSON bodies above this size are parsed in a worker process rather than on a thread: JSON
    parsers hold Python's GIL, so a thread parsing 60 MB stalls every other request for the
    0.5-0.8 s it takes. The process copies the body out and the array back in milliseconds."""
    decode_processes: int = Field(default=1, ge=0)
    """Worker processes parsing large JSON bodies, per API process, started on the first one
    (about 60 MB each); 0 parses them on threads."""
    max_dataset_rows: int = Field(default=DEFAULT_MAX_ROWS, ge=1)
    """Most rows an uploaded dataset (POST /datasets, /import's calibration file) may hold: 413
    beyond it, judged from the file's header, metadata or line count before its data is read."""
    max_dataset_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    """Most bytes an uploaded dataset may decode to (a .npy array as its header declares, inside
    a .npz too; 8 bytes a value of .csv and .parquet): 413 beyond it, before anything is
    decompressed. Decoding takes about 1.5 times this in memory."""
    max_parameters: int = Field(default=MAX_PARAMETERS, ge=1)
    """Most weights and biases a model trained by POST /train may have; a config beyond it is a
    422 at submit time (`hidden_dims: [1000000, 1000000]` would try to allocate terabytes)."""
    max_import_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest model file `aeserve import` and POST /import take (ONNX or TorchScript); over the
    HTTP body limit too, raise both."""
    api_key: SecretStr | None = None
    """When set, management calls need `Authorization: Bearer <key>`."""
    inference_requires_key: bool = False
    """Whether inference routes need the API key too (only when `api_key` is set)."""
    require_api_key: bool = False
    """`aeserve serve` refuses to start without `api_key` (docker-compose.yml sets this, so that
    its other commands run without the key in the shell)."""
    reload_interval_s: float = Field(default=2.0, gt=0)
    """How often each process looks for a newly promoted version."""
    cached_version_idle_s: float = Field(default=120.0, ge=0)
    """A version that is not active stays loaded after a request named it (or after it was
    replaced by a promotion) until no request has named it for this long; 0: until the cache of
    4 such versions needs its place. Each holds its onnxruntime sessions' memory."""
    heap_trim_interval_s: float = Field(default=60.0, ge=0)
    """How often each process hands the memory malloc holds free back to the system
    (core/heap.py; 0: only after a version loads). Without it a server's RSS stays at the peak
    of what request bodies once needed."""
    job_backend: Literal["local", "celery"] = "local"
    """Where training jobs run: a local process pool or Celery workers."""
    broker_url: str = "redis://127.0.0.1:6379/0"
    """Celery broker and result backend (Redis) when `job_backend` is `celery`."""
    max_concurrent_jobs: int = Field(default=1, ge=1)
    """Training jobs the local backend runs at once; the rest wait in order."""
    data_dir: Path | None = None
    """Uploaded and inline training data; unset means `<model_repository>/.datasets` (in the
    object store too, for an `s3://` repository). Celery workers must see the same folder."""
    jobs_db: Path | None = None
    """SQLite file of the local job backend; unset means `<model_repository>/.jobs.sqlite`."""
    job_heartbeat_timeout_s: float = Field(default=15.0, gt=0)
    """A running job not seen alive for this long (by the API process that started it, or by the
    heartbeat of its Celery worker) has failed, "interrupted"."""
    job_retention_s: float | None = Field(default=7 * 24 * 3600.0, gt=0)
    """Finished jobs (succeeded, failed, cancelled) are removed this long after they finished:
    their SQLite rows (local backend), their Celery results and job index entries in Redis
    (Celery backend); checked every minute by each API process. Unset keeps them forever."""
    dataset_retention_s: float | None = Field(default=None, gt=0)
    """Datasets not stored or trained on for this long, and named by no queued or running job,
    are removed (checked every minute by each API process). Unset (the default) keeps them
    until DELETE /datasets/{id}."""

    @field_validator("model_repository", mode="before")
    @classmethod
    def _path_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, PurePath) else value

    @property
    def repository_in_store(self) -> bool:
        """Whether the repository is on an object store (`s3://…`) rather than a folder."""
        return self.model_repository.startswith("s3://")

    @property
    def local_root(self) -> Path:
        """The folder this process keeps its files in: the repository folder, or the cache."""
        return self.cache_dir if self.repository_in_store else Path(self.model_repository)

    @property
    def dataset_limits(self) -> DatasetLimits:
        return DatasetLimits(self.max_dataset_rows, self.max_dataset_bytes)

    def for_another_process(self) -> Settings:
        """These settings with every local folder absolute, for a process with another cwd."""
        update: dict[str, object] = {"cache_dir": self.cache_dir.resolve()}
        if not self.repository_in_store:
            update["model_repository"] = str(Path(self.model_repository).resolve())
        if not self.repository_in_store or self.data_dir is not None:
            update["data_dir"] = self.datasets_path.resolve()
        return self.model_copy(update=update)

    @property
    def datasets_path(self) -> Path:
        return self.data_dir or self.local_root / ".datasets"

    @property
    def jobs_db_path(self) -> Path:
        return self.jobs_db or self.local_root / ".jobs.sqlite"
