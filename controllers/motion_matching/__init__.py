"""Motion matching: the runtime controller over a motion database."""

from .controller import MotionMatchingController, measured_speeds
from .runtime import RuntimeConfig

__all__ = ["MotionMatchingController", "RuntimeConfig", "measured_speeds"]
