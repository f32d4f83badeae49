"""Proctoring capture: camera, microphone and screen sources, encoders, analyzers."""
