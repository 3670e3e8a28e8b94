"""reds: nested subnetwork families that a device switches between in microseconds."""

__version__ = "0.1.0"
# The name on the package index ("reds" there is an unrelated project); import name and
# console script stay `reds`.
DISTRIBUTION = "reds-subnetworks"
