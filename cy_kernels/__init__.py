"""xHBNN kernels (placeholder while the kernels are written)."""
