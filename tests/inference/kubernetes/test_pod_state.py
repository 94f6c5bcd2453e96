"""How Pod and Job statuses become worker phases and reasons, without a cluster.

Simulated: the status objects, shaped as the API server returns them (Kubernetes 1.20 to 1.33:
scheduler conditions, kubelet container states, node-controller reasons, DisruptionTarget).
"""

from __future__ import annotations

import pytest

from inference.backends.kubernetes import job_state, pod_state


def pod(phase="Pending", *, conditions=(), containers=(), reason=None, **metadata):
    status = {"phase": phase, "conditions": list(conditions)}
    if containers:
        status["containerStatuses"] = [{"name": "worker", "state": s} for s in containers]
    if reason:
        status["reason"] = reason
    return {"metadata": {"name": "w", **metadata}, "status": status}


READY = {"type": "Ready", "status": "True"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod(), ("starting", "")),
        (
            pod(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    }
                ]
            ),
            ("starting", "Unschedulable"),
        ),
        (
            pod(containers=[{"waiting": {"reason": "ErrImagePull"}}]),
            ("starting", "ImagePullBackOff"),
        ),
        (
            pod(containers=[{"waiting": {"reason": "ImagePullBackOff"}}]),
            ("starting", "ImagePullBackOff"),
        ),
        (pod(containers=[{"waiting": {"reason": "ContainerCreating"}}]), ("starting", "")),
        (
            pod(containers=[{"waiting": {"reason": "CreateContainerConfigError"}}]),
            ("starting", "CreateContainerConfigError"),
        ),
        (pod("Running", containers=[{"running": {}}]), ("starting", "")),
        (pod("Running", conditions=[READY], containers=[{"running": {}}]), ("running", "")),
        (pod("Succeeded"), ("succeeded", "Completed")),
        (
            pod("Failed", containers=[{"terminated": {"exitCode": 137, "reason": "OOMKilled"}}]),
            ("failed", "OOMKilled"),
        ),
        (
            pod("Failed", containers=[{"terminated": {"exitCode": 137, "reason": "Error"}}]),
            ("failed", "Killed"),
        ),
        (
            pod("Failed", containers=[{"terminated": {"exitCode": 3, "reason": "Error"}}]),
            ("failed", "Error"),
        ),
        (pod("Failed", reason="NodeLost"), ("failed", "NodeLost")),
        (pod("Failed", reason="Evicted"), ("failed", "Evicted")),
        (pod("Unknown"), ("failed", "NodeLost")),
        (
            pod(
                "Running",
                conditions=[
                    READY,
                    {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC"},
                ],
            ),
            ("failed", "NodeLost"),
        ),
        (
            pod(
                "Running",
                conditions=[
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "PreemptionByScheduler",
                    }
                ],
            ),
            ("failed", "Preempted"),
        ),
        (
            pod("Running", conditions=[READY], deletionTimestamp="2026-01-01T00:00:00Z"),
            ("starting", "Terminating"),
        ),
    ],
)
def test_pod_state(obj, expected):
    phase, reason, _ = pod_state(obj)
    assert (phase, reason) == expected


def test_unschedulable_keeps_the_scheduler_message():
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    obj = pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ]
    )
    assert pod_state(obj) == ("starting", "Unschedulable", message)


def job(*conditions, suspend=False):
    return {
        "metadata": {"name": "w"},
        "spec": {"suspend": suspend},
        "status": {"conditions": [{"status": "True", **c} for c in conditions]},
    }


def test_job_states():
    running = pod("Running", conditions=[READY], creationTimestamp="2026-01-01T00:00:02Z")
    oom = pod(
        "Failed",
        containers=[{"terminated": {"exitCode": 137, "reason": "OOMKilled"}}],
        creationTimestamp="2026-01-01T00:00:01Z",
    )
    assert job_state(job(), [])[:2] == ("starting", "")
    assert job_state(job(suspend=True), [])[:2] == ("starting", "Queued")
    assert job_state(job(), [oom, running])[:2] == ("running", "")
    phase, reason, message = job_state(job(), [oom])
    assert (phase, reason) == ("starting", "OOMKilled")
    assert message.startswith("retrying")
    assert job_state(job({"type": "Complete"}), [])[:2] == ("succeeded", "Completed")
    failed = job({"type": "Failed", "reason": "BackoffLimitExceeded"})
    assert job_state(failed, [oom])[:2] == ("failed", "OOMKilled")
    assert job_state(failed, [])[:2] == ("failed", "BackoffLimitExceeded")
