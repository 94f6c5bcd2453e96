"""The GPU worker: `python -m inference.worker` speaks the worker protocol and runs pipelines.

It imports nothing of Django or of the control plane's apps (only `inference.contracts`), so it
runs in a slim GPU image. A test keeps it that way.
"""
