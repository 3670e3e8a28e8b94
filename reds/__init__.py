"""reds: nested subnetwork families that a device switches between in microseconds."""

__version__ = "0.1.0"
