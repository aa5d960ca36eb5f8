# aeserve images, one target each:
#   serve       the HTTP API on onnxruntime (no PyTorch); models come from the /models volume
#   worker      the Celery training worker with CPU PyTorch (also trains the first-run model)
#   serve-gpu   the API on onnxruntime-gpu, CUDA and cuDNN from pip (run with AESERVE_PROVIDERS=cuda)
#   worker-gpu  the worker with CUDA PyTorch
#
# No model is trained here: docker-compose.yml's one-shot `default-model` service trains one into
# the shared volume when the repository is empty, so a change to the source rebuilds in seconds.
#
# The pip install lines and the commands run here are the Makefile's and the tests' own
# (tests/deploy/test_commands.py holds them together), so a green `make test` means these
# images install and start.
#
#   docker build --target serve -t aeserve-serve .
#   docker build --target worker -t aeserve-worker .
#
# Stage order: every stage a CPU target needs comes before it and the GPU stages come last, so
# the legacy builder (no BuildKit), which builds every stage up to the target, never builds them
# for a CPU target.
#
# Build arguments:
#   PYTHON_IMAGE        base image; may be pinned to a digest for reproducible builds:
#                       --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
#   PIP_INDEX_URL       package index of every pip install (a mirror, or an air-gapped index);
#   PIP_TRUSTED_HOST    and a host pip may reach without TLS. Declared in every stage that runs
#                       pip, as the legacy builder does not pass ARGs on to child stages.
#   TORCH_INDEX_URL     where the CPU torch wheel comes from (TORCH_CUDA_INDEX_URL: the CUDA one)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- runtime: what every final image is built on -----------------------------------------------
# The Python image in one layer, less its message catalogues (/usr/share/locale, unused in a
# C.UTF-8 container; the official slim image leaves them out already), with the unprivileged
# user that owns the model repository. A fixed uid, the same in every image, so api and worker
# containers can both write the shared model volume.
FROM ${PYTHON_IMAGE} AS python
RUN rm -rf /usr/share/locale/* \
    && groupadd --system --gid 10001 aeserve \
    && useradd --system --uid 10001 --gid aeserve --create-home --home-dir /home/aeserve aeserve \
    && install -d -o aeserve -g aeserve /models

FROM scratch AS runtime
# hadolint ignore=DL3067
COPY --from=python / /
ENV LANG=C.UTF-8 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    AESERVE_MODEL_REPOSITORY=/models

# ---- base: a virtualenv to install into; final images copy the finished one ------------------
FROM runtime AS base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src

# ---- skeleton: pyproject.toml with empty packages ---------------------------------------------
# The dependency stages install this stand-in, so their layers change only with pyproject.toml;
# the real source is installed on top later with the same pip command. They then empty /src:
# setuptools' build/ folder would otherwise hand the stand-in's empty __init__.py files to the
# real build, whose copies are older.
FROM base AS skeleton
COPY pyproject.toml ./
RUN mkdir core service models && touch core/__init__.py service/__init__.py models/__init__.py

# ---- serve: the API, onnxruntime only -----------------------------------------------------------
FROM base AS serve-deps
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
COPY --from=skeleton /src ./
RUN pip install /src \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM serve-deps AS serve-build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
# Then out goes what the API never loads (the image budget is 300 MB): celery's interactive
# shell (click-repl and what it needs; the API sends jobs, it never runs celery's command line),
# the installers, the tests, type stubs and C/C++ sources of the installed packages,
# onnxruntime's C library for other languages (its Python binding does not link it) and its
# offline model tools, numpy's Fortran wrapper generator.
RUN pip install /src \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'models')))" \
    && pip uninstall --yes click-repl prompt-toolkit wcwidth pip setuptools wheel \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.h' -o -name '*.c' -o -name '*.cpp' \) -delete \
    && rm -rf "$site"/onnxruntime/capi/libonnxruntime.so.* "$site"/onnxruntime/transformers \
        "$site"/onnxruntime/quantization "$site"/onnxruntime/tools "$site"/numpy/f2py \
    && python -c "import numpy, onnxruntime, service.http.app"

FROM runtime AS serve
COPY --from=serve-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_HOST=0.0.0.0 \
    AESERVE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('AESERVE_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["aeserve", "serve"]

# ---- worker: the Celery training worker, CPU PyTorch --------------------------------------------
FROM base AS worker-deps
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY --from=skeleton /src ./
RUN pip install '/src[train]' \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM worker-deps AS worker-build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
COPY pyproject.toml README.md ./
COPY core ./core
COPY models ./models
COPY service ./service
RUN pip install '/src[train]' \
    && pip uninstall --yes pip setuptools wheel

FROM runtime AS worker
COPY --from=worker-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_JOB_BACKEND=celery
# Alive means answering a Celery ping through the broker (models/jobs/health.py).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "models.jobs.health"]
CMD ["aeserve", "worker"]

# ---- GPU variants -------------------------------------------------------------------------------
FROM base AS serve-gpu-deps
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
# onnxruntime-gpu with CUDA and cuDNN as pip packages (no CUDA base image needed; the NVIDIA
# container toolkit brings the driver). Pin it for a reproducible build:
#   --build-arg ONNXRUNTIME_GPU='onnxruntime-gpu[cuda,cudnn]==X.Y.Z'
ARG ONNXRUNTIME_GPU=onnxruntime-gpu[cuda,cudnn]
COPY --from=skeleton /src ./
# onnxruntime (a base requirement) and onnxruntime-gpu share the `onnxruntime` package folder:
# reinstalling the GPU build last makes its files the ones on disk.
# hadolint ignore=DL3013
RUN pip install '/src[gpu]' "${ONNXRUNTIME_GPU}" \
    && ort_gpu="$(python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')" \
    && pip install --no-deps --force-reinstall "onnxruntime-gpu==${ort_gpu}" \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM serve-gpu-deps AS serve-gpu-build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
RUN pip install '/src[gpu]' \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'models')))" \
    && pip uninstall --yes pip setuptools wheel

FROM runtime AS serve-gpu
COPY --from=serve-gpu-build /opt/venv /opt/venv
# The CUDA and cuDNN libraries of the nvidia-* wheels are registered with the dynamic loader so
# onnxruntime finds them.
RUN find /opt/venv -type d -path '*/nvidia/*/lib' > /etc/ld.so.conf.d/aeserve-nvidia.conf \
    && ldconfig
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_HOST=0.0.0.0 \
    AESERVE_PORT=8000 \
    AESERVE_PROVIDERS=cuda
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('AESERVE_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["aeserve", "serve"]

FROM base AS worker-gpu-deps
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu130
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX_URL}"
COPY --from=skeleton /src ./
RUN pip install '/src[train]' \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM worker-gpu-deps AS worker-gpu-build
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST
COPY pyproject.toml README.md ./
COPY core ./core
COPY models ./models
COPY service ./service
RUN pip install '/src[train]' \
    && pip uninstall --yes pip setuptools wheel

FROM runtime AS worker-gpu
COPY --from=worker-gpu-build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_JOB_BACKEND=celery
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "models.jobs.health"]
CMD ["aeserve", "worker"]
