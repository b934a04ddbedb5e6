"""Which backend a name means: ``auto``, ``torch``, ``numpy`` or ``scripted`` (tests).

numpy and torch are imported only when their backend is chosen, in the worker process (the
parent of a run never creates a CUDA context). ``auto`` is torch when it sees a CUDA device,
else numpy on the CPU, with a note saying the figures are the CPU's.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from agent.bench.backend import Backend
from agent.bench.scripted import ScenarioError, load_scenario

CHOICES = ("auto", "numpy", "torch", "scripted")
CPU_NOTE = "CPU, not a GPU: no CUDA device through torch; these figures measure the host's CPU"


class BackendUnavailableError(Exception):
    """The chosen backend's library is missing or has no usable device."""


def load_backend(choice: str, script: Path | None = None) -> tuple[Backend, str]:
    """Returns: the backend for ``choice`` and a note for the result ("" when none).

    ``script`` is the scenario file of the scripted backend. Raises: BackendUnavailableError.
    """
    if choice == "scripted":
        if script is None:
            raise BackendUnavailableError("the scripted backend needs a scenario file (--script)")
        try:
            scripted = load_scenario(script)
            return scripted, scripted.note or "scripted backend: no real measurement"
        except ScenarioError as exc:
            raise BackendUnavailableError(str(exc)) from None
    if choice not in CHOICES:
        raise BackendUnavailableError(f"unknown backend {choice!r} ({', '.join(CHOICES)})")
    if choice in ("auto", "torch"):
        if importlib.util.find_spec("torch") is not None:
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers GPUs as NVML
            from agent.bench.torch_backend import TorchBackend  # noqa: PLC0415 (lazy: torch)

            torch_backend = TorchBackend()
            if torch_backend.devices():
                return torch_backend, ""
            if choice == "torch":
                raise BackendUnavailableError("torch is installed but sees no CUDA device")
        elif choice == "torch":
            raise BackendUnavailableError(
                "torch is not installed (install a CUDA build of PyTorch)"
            )
    try:
        from agent.bench.numpy_backend import NumpyBackend  # noqa: PLC0415 (lazy: numpy)
    except ModuleNotFoundError as exc:
        if exc.name != "numpy":
            raise
        raise BackendUnavailableError(
            "the numpy backend needs numpy: pip install 'dcmon[gpu-bench]'"
        ) from None
    return NumpyBackend(), CPU_NOTE if choice == "auto" else "CPU, not a GPU (numpy backend)"
