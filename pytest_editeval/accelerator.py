"""The accelerator's memory once a model is dropped (model mode's pipeline, the in-process judge): torch is
imported only if it is installed, and nothing happens without CUDA."""

from __future__ import annotations


def free_accelerator_memory() -> None:
    """Collect the dropped model's objects and hand CUDA's cached blocks back, so the next model fits."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover - a judge or pipeline ran, so torch is there
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
