"""Motion matching: the runtime controller over a motion database."""

from .controller import (DatabaseSource, KinematicController, MotionMatchingController, measured_accel_limit,
                         measured_coverage, measured_speeds)
from .runtime import RuntimeConfig

__all__ = ["DatabaseSource", "KinematicController", "MotionMatchingController", "RuntimeConfig", "measured_accel_limit",
           "measured_coverage", "measured_speeds"]
