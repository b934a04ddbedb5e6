"""The GPU benchmark and health job (``dcmon bench``, and remote runs ordered by the server).

``job`` is the entry point: NVML pre-checks (``checks``), the harness run in a worker process
(``workers`` starts ``worker``, which streams ``stream`` lines), NVML sampled during each test
(``conditions``), XIDs watched (``xids``), and the run judged against the SKU table
(``verdicts``). ``harness`` turns a level into tests per device over the ``backend`` seam
(``numpy_backend`` on the CPU, ``torch_backend`` on CUDA, ``scripted`` the in-memory twin;
``backends`` picks one by name) and records a ``result`` tree. ``cli`` is the command, with
``display`` (and ``progress_bar``) for its progress; ``remote`` runs the server's orders.
"""
