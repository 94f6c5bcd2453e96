"""A pipeline's failure code and details reach the control plane with its reason.

Real: the worker (`inference.worker.runner.Worker`) in a thread, its HTTP client and outbox.
Simulated: the control plane is a stand-in at the HTTP boundary (`FakeControlPlane`).
"""

from __future__ import annotations

import uuid

from inference.worker.pipelines import PipelineFailed, default_registry


def test_a_failure_with_a_code_reports_the_code_and_details_as_its_output(
    control_plane, start_worker
):
    def blurred(ctx):
        raise PipelineFailed(
            "The sharpest frame of the face is blurred (sharpness 4, at least 10 needed).",
            code="too_blurry",
            details={"sharpness": 4.2, "minimum": 10.0},
        )

    def plain(ctx):
        raise PipelineFailed("invalid spec: 'seconds' must be a number")

    registry = default_registry()
    registry.register("blurred", blurred)
    registry.register("plain", plain)
    start_worker(pipelines=registry)
    coded, uncoded = str(uuid.uuid4()), str(uuid.uuid4())
    control_plane.offer(coded, spec={}, pipeline="blurred")
    control_plane.offer(uncoded, spec={}, pipeline="plain")

    control_plane.wait_for(lambda: control_plane.result(coded) and control_plane.result(uncoded))

    result = control_plane.result(coded)
    assert (result["status"], result["reason"]) == (
        "failed",
        "The sharpest frame of the face is blurred (sharpness 4, at least 10 needed).",
    )
    assert result["output"] == {
        "code": "too_blurry",
        "details": {"sharpness": 4.2, "minimum": 10.0},
    }
    assert "output" not in control_plane.result(uncoded)  # no code: the reason alone
