"""Durable, encrypted on-disk spool of recorded segments, and (later) the uploader."""
