"""vocalsep: vocal isolation on raw stereo audio with a WaveNet-like network."""

__version__ = "0.1.0"
