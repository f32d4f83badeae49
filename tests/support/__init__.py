"""Test support: real X servers, window manager, PulseAudio virtual microphone, HTTP servers."""
