"""Talking to boards: the serial link, emulators, flashing, and `reds serve` (the protocol
served from this computer by onnxruntime, TFLite or the C harness)."""
