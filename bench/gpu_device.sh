#!/bin/sh
# The GPU comparison on a machine whose image has PyTorch with CUDA but onnxruntime's CPU build:
# joins the onnxruntime-gpu wheel from the four parts that earlier copies left in /tmp (part.00
# to part.03, see ../shared/gpu/ONNXRUNTIME_GPU.md), installs it to shadow the CPU build, runs
# bench.gpu on an exported version and leaves the results file in $OUT.
#
#   sh bench/gpu_device.sh [VERSION_FOLDER]    # default: bench/.work/repository/mnist784/1
set -eu
wheel=/tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
sha256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
cat /tmp/part.00 /tmp/part.01 /tmp/part.02 /tmp/part.03 > "$wheel"
echo "$sha256  $wheel" | sha256sum -c -
python3 -m pip install --quiet --no-index --no-deps --target /tmp/site "$wheel"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
PYTHONPATH=/tmp/site python3 -m bench.gpu "${1:-bench/.work/repository/mnist784/1}"
cp bench/results/serving.md "${OUT:-/tmp}/serving.md"
