"""The pipelines a worker runs: render, live, converse, build. Torch and media code, no Django.

Stages (text to speech, visemes, the portrait renderer, encoding) are small modules with one job;
`render.py` and the other pipelines put them together for a workload.
"""
