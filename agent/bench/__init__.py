"""The GPU benchmark and health job (``dcmon bench``): a pure harness over a backend seam.

``backend`` is the seam (devices, matrix-multiply throughput, memory and host<->device copy
bandwidth, a correctness burn); ``numpy_backend`` measures the CPU, ``torch_backend`` CUDA
devices, ``scripted`` is the in-memory twin for tests. ``harness`` turns a level into tests per
device and records a ``result`` tree; ``cli`` is the command. Judging the figures against a SKU
table is the server's job, not this package's.
"""
