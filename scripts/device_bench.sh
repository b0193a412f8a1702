#!/usr/bin/env bash
# The bench on a real GPU through Vulkan, prepared so that one short run on
# a lent machine does it: the adapter, then one JSON line per workload, the
# 4096² matmul in f32, bf16 and f16 included, the transformer's step with
# fused and composed attention at context 256 and 1024, with the tiled matmul family
# (webgrad picks it on a non-CPU adapter). Needs a Rust toolchain and the
# GPU's Vulkan driver; prints everything to stdout.
#
#   bash scripts/device_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WGPU_BACKEND=vulkan
mkdir -p "${XDG_RUNTIME_DIR:=/tmp/webgrad-xdg}" && chmod 700 "$XDG_RUNTIME_DIR"
export XDG_RUNTIME_DIR
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
cargo build --release --example bench
bench=target/release/examples/bench
# Cold start first (no caches), then the workloads; the 4096² product last.
"$bench" cold
"$bench" matmul elementwise mlp chain conv cnn gpt precision attention
"$bench" matmul4096 matmul4096_16
