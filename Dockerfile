# aeserve images, one target each:
#   serve       the HTTP API on onnxruntime (no PyTorch), with the default model `digits` inside
#   worker      the Celery training worker with CPU PyTorch
#   serve-gpu   the API on onnxruntime-gpu, CUDA and cuDNN from pip (run with AESERVE_PROVIDERS=cuda)
#   worker-gpu  the worker with CUDA PyTorch
#   builder     the worker's install, which trains `digits` at build time
#
# The pip install lines and the commands run here are the Makefile's and the tests' own
# (tests/deploy/test_commands.py holds them together), so a green `make test` means these
# images install and start.
#
#   docker build --target serve -t aeserve-serve .
#   docker build --target worker -t aeserve-worker .
#
# PYTHON_IMAGE may be pinned to a digest for reproducible builds:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- base: a virtualenv on PATH and an unprivileged user that owns the model repository --------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AESERVE_MODEL_REPOSITORY=/models \
    AESERVE_DEFAULT_MODEL=digits
# A fixed uid, the same in every image, so api and worker containers can both write the shared
# model volume.
RUN python -m venv /opt/venv \
    && groupadd --system --gid 10001 aeserve \
    && useradd --system --uid 10001 --gid aeserve --create-home --home-dir /home/aeserve aeserve \
    && install -d -o aeserve -g aeserve /models
WORKDIR /src

# ---- skeleton: pyproject.toml with empty packages ---------------------------------------------
# The dependency stages install this stand-in, so their layers change only with pyproject.toml;
# the real source is installed on top later with the same pip command. They then empty /src:
# setuptools' build/ folder would otherwise hand the stand-in's empty __init__.py files to the
# real build, whose copies are older.
FROM base AS skeleton
COPY pyproject.toml ./
RUN mkdir core service models && touch core/__init__.py service/__init__.py models/__init__.py

# ---- dependencies, cached until pyproject.toml changes -----------------------------------------
FROM base AS serve-deps
COPY --from=skeleton /src ./
RUN pip install /src \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM base AS worker-deps
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY --from=skeleton /src ./
RUN pip install '/src[train]' \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM base AS serve-gpu-deps
# onnxruntime-gpu with CUDA and cuDNN as pip packages (no CUDA base image needed; the NVIDIA
# container toolkit brings the driver). Pin it for a reproducible build:
#   --build-arg ONNXRUNTIME_GPU='onnxruntime-gpu[cuda,cudnn]==X.Y.Z'
ARG ONNXRUNTIME_GPU=onnxruntime-gpu[cuda,cudnn]
COPY --from=skeleton /src ./
# onnxruntime (a base requirement) and onnxruntime-gpu share the `onnxruntime` package folder:
# reinstalling the GPU build last makes its files the ones on disk. The CUDA and cuDNN libraries
# of the nvidia-* wheels are registered with the dynamic loader so onnxruntime finds them.
# hadolint ignore=DL3013
RUN pip install '/src[gpu]' "${ONNXRUNTIME_GPU}" \
    && ort_gpu="$(python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')" \
    && pip install --no-deps --force-reinstall "onnxruntime-gpu==${ort_gpu}" \
    && find /opt/venv -type d -path '*/nvidia/*/lib' > /etc/ld.so.conf.d/aeserve-nvidia.conf \
    && ldconfig \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

FROM base AS worker-gpu-deps
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX_URL=https://download.pytorch.org/whl/cu130
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX_URL}"
COPY --from=skeleton /src ./
RUN pip install '/src[train]' \
    && pip uninstall --yes aeserve \
    && find /src -mindepth 1 -delete

# ---- builder: the worker's install, and the default model trained into /models -----------------
FROM worker-deps AS builder
COPY pyproject.toml README.md ./
COPY core ./core
COPY models ./models
COPY service ./service
RUN pip install '/src[train]'
USER 10001:10001
WORKDIR /home/aeserve
RUN aeserve train builtin:digits --name digits --loss bce --promote

# ---- serve: the API, onnxruntime only -----------------------------------------------------------
FROM serve-deps AS serve
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
RUN pip install /src \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'models')))"
COPY --from=builder --chown=10001:10001 /models /models
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_HOST=0.0.0.0 \
    AESERVE_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('AESERVE_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["aeserve", "serve"]

# ---- worker: the Celery training worker, CPU PyTorch --------------------------------------------
FROM builder AS worker
ENV AESERVE_JOB_BACKEND=celery
CMD ["aeserve", "worker"]

# ---- GPU variants -------------------------------------------------------------------------------
FROM serve-gpu-deps AS serve-gpu
COPY pyproject.toml README.md ./
COPY core ./core
COPY service ./service
RUN pip install '/src[gpu]' \
    && python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'models')))"
COPY --from=builder --chown=10001:10001 /models /models
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_HOST=0.0.0.0 \
    AESERVE_PORT=8000 \
    AESERVE_PROVIDERS=cuda
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('AESERVE_PORT', '8000') + '/readyz', timeout=4)"]
CMD ["aeserve", "serve"]

FROM worker-gpu-deps AS worker-gpu
COPY pyproject.toml README.md ./
COPY core ./core
COPY models ./models
COPY service ./service
RUN pip install '/src[train]'
COPY --from=builder --chown=10001:10001 /models /models
USER 10001:10001
WORKDIR /home/aeserve
ENV AESERVE_JOB_BACKEND=celery
CMD ["aeserve", "worker"]
