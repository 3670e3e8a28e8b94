"""PyTorch: nested modules that run any prefix width, their plain twins, unit importance
and function-preserving permutation. (This file imports no torch: the CLI reads METHODS.)"""

METHODS = ("grad", "l1", "random")  # unit importance (reds.nn.importance)
