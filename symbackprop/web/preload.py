"""Imported by the worker pool's forkserver before it forks any worker: every worker starts with
symbackprop imported and its caches warm (see tasks.preload). A failure here only costs the warm-up."""
from . import tasks

try:
    tasks.preload()
except Exception:                                    # noqa: BLE001 (the forkserver must start regardless)
    pass
