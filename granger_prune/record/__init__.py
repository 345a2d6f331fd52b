"""Recording: the loss change and the parameter changes of every optimizer step (torch)."""

from .trajectory import InMemoryTrajectory, Trajectory, TrajectoryRecorder, optimizer_step

__all__ = ["InMemoryTrajectory", "Trajectory", "TrajectoryRecorder", "optimizer_step"]
