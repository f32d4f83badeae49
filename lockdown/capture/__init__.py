"""Proctoring capture: camera, microphone and screen sources, encoders, analyzers."""

from typing import Final

#: The camera source that is no camera: a moving test pattern (demo, tests). Here, not in
#: :mod:`lockdown.capture.sources`, so that asking about it imports neither OpenCV nor
#: PyAV (the start asks on the GUI thread).
PATTERN: Final = "pattern"
