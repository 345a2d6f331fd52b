"""Recording: the loss change and the parameter changes of every optimizer step.

* ``trajectory``: the :class:`Trajectory` interface and the in-memory store (torch-free).
* ``disk``: :class:`DiskTrajectory`, the steps in ``.npy`` files (torch-free).
* ``device``: :class:`DeviceTrajectory`, the steps kept on the model's device (torch).
* ``bfloat16``: steps stored as bfloat16 bit patterns, decoded with NumPy (torch-free).
* ``buffer``: preallocated device blocks of steps, flushed to a store by a writer thread.
* ``recorder``: :class:`TrajectoryRecorder`, :func:`optimizer_step` and
  :func:`gradient_norms` (torch).
"""

from .bfloat16 import Bfloat16Rows
from .device import DeviceStore, DeviceTrajectory
from .disk import DiskStore, DiskTrajectory, check_room, trajectory_bytes
from .recorder import TrajectoryRecorder, gradient_norms, optimizer_step
from .trajectory import InMemoryTrajectory, Trajectory

__all__ = ["Bfloat16Rows", "DeviceStore", "DeviceTrajectory", "DiskStore", "DiskTrajectory",
           "InMemoryTrajectory", "Trajectory",
           "TrajectoryRecorder", "check_room", "gradient_norms", "optimizer_step", "trajectory_bytes"]
