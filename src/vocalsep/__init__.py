"""vocalsep: vocal isolation on raw stereo audio with a WaveNet-like network."""

from vocalsep.env import disable_telemetry

__version__ = "0.1.0"

disable_telemetry()
