"""Training loop, distributed training, FID and downstream benchmarks."""
