"""The IR: network specs (ops and unit groups), REDS's architectures, the exact cost model.

Nothing here imports torch: the spec is plain data that every other layer reads.
"""
