#!/usr/bin/env bash
# The bench on a real GPU through Vulkan, prepared so that one short run on
# a lent machine does it: the adapter, then one JSON line per workload, the
# 4096² matmul in f32, bf16 and f16 included, the transformer's step with
# fused and composed attention at context 256 and 1024, with the tiled
# kernel family (webgrad picks it on a non-CPU adapter), and the profiler's
# table of the attention example. Needs the GPU's Vulkan driver, and a Rust
# toolchain unless WEBGRAD_BIN_DIR names a folder holding release builds of
# the `bench` and `attention` examples (for a machine without one: build
# them elsewhere and carry them). Prints everything to stdout.
#
#   bash scripts/device_bench.sh
#   WEBGRAD_BIN_DIR=prebuilt bash scripts/device_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WGPU_BACKEND=vulkan
mkdir -p "${XDG_RUNTIME_DIR:=/tmp/webgrad-xdg}" && chmod 700 "$XDG_RUNTIME_DIR"
export XDG_RUNTIME_DIR
# Tuning results of this run only: every variant is timed on this GPU.
WEBGRAD_CACHE_DIR=$(mktemp -d)
export WEBGRAD_CACHE_DIR
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
if [ -n "${WEBGRAD_BIN_DIR:-}" ]; then
    bin=$WEBGRAD_BIN_DIR
else
    cargo build --release --example bench --example attention
    bin=target/release/examples
fi
# Cold start first (no caches), then the workloads; the 4096² products last.
"$bin/bench" cold
"$bin/bench" matmul elementwise mlp chain conv cnn gpt precision attention
"$bin/bench" matmul4096 matmul4096_16
# Where the step's time goes with fused and composed attention.
"$bin/attention" 256 1024 2048 --profile
