#!/usr/bin/env python3
"""Predicted scaling of webgrad's data-parallel training (docs/distributed.md).

Weak scaling: each GPU keeps its batch; a step is the GPU's compute, then
the gradients' trip to the host, their all-reduce over the network, and the
trip back (webgrad runs the backward pass in one submit, so nothing of it
overlaps the communication). The all-reduce is modelled as a ring:
2(N-1)/N * B / bandwidth + 2(N-1) * latency. The inputs are measured where
the comments say; run it to print the tables.

    python3 scripts/scaling_model.py
"""

# Host round trip: a PCIe 5.0 x16 link (H100/H200 SXM hosts), about
# 50 GB/s each way in practice, plus the latency of one readback, measured:
# `train_ddp` on an NVIDIA H200 read the transformer's 454 KB of gradients
# back in 0.38 ms per step (one rank). The upload of the averaged
# gradients rides with the optimizer's submit.
PCIE_BYTES_PER_S = 50e9
HOST_LATENCY_S = 0.37e-3

# Per-message latency of the network (RDMA-class interconnect).
NET_LATENCY_S = 5e-6

NETWORKS = {"100 Gb/s": 100e9 / 8, "400 Gb/s": 400e9 / 8}
SIZES = [8, 64, 512]

MODELS = {
    # The character transformer of the examples: 2 blocks, width 64.
    # Gradient bytes and compute: `train_ddp` on an NVIDIA H200, one rank,
    # batch 32 x 64: 9.86 ms per step of which 0.49 ms read-back and
    # all-reduce (docs/distributed.md).
    "char transformer (0.45 MB of gradients, 9.4 ms/step)": (4 * 113_480, 9.37e-3, 2048),
    # A GPT-2-small-sized model (124M parameters) at 32 x 1024 tokens per
    # GPU: 6 * P * tokens flops at the 18 TFLOP/s webgrad's f32 matmul
    # reaches on the H200 (docs/benchmarks.md).
    "124M-parameter transformer (496 MB, 1.36 s/step)": (
        4 * 124e6,
        6 * 124e6 * 32 * 1024 / 18e12,
        32 * 1024,
    ),
}


def step_parts(grad_bytes, compute_s, n, bandwidth):
    host = 2 * grad_bytes / PCIE_BYTES_PER_S + HOST_LATENCY_S
    ring = 2 * (n - 1) / n * grad_bytes / bandwidth + 2 * (n - 1) * NET_LATENCY_S
    return compute_s, host, ring


def main():
    for name, (grad_bytes, compute_s, tokens) in MODELS.items():
        print(f"\n{name}, {tokens} tokens per GPU per step")
        print("| GPUs | network | host round trip ms | all-reduce ms | efficiency | tokens per GPU for 80% |")
        print("|---|---|---|---|---|---|")
        for n in SIZES:
            for net, bandwidth in NETWORKS.items():
                c, h, r = step_parts(grad_bytes, compute_s, n, bandwidth)
                # Compute grows with the batch; 80% needs compute = 4 x communication.
                needed = tokens * 4 * (h + r) / c
                print(
                    f"| {n} | {net} | {1e3 * h:.2f} | {1e3 * r:.2f} | {100 * c / (c + h + r):.0f}% "
                    f"| {needed:,.0f} |"
                )


if __name__ == "__main__":
    main()
