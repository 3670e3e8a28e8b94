"""PyTorch: nested modules that run any prefix width, their plain twins, unit importance
and function-preserving permutation."""
