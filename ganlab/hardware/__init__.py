"""Where one run computes: the device, the speed switches (CUDA graph, bf16, TF32) and DDP."""
