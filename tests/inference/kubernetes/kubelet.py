"""A simulated kubelet for the real-API-server tests: GPU nodes and pod phases, no containers.

It registers Nodes with `nvidia.com/gpu` capacity, the GPU taint and a GPU-class label, reports
them Ready (and lifts the `not-ready` taint a new Node gets, since the node lifecycle controller
is off), then, like a kubelet, moves the pods the real scheduler bound to its nodes from Pending
to Running and Ready, finishes graceful deletions, and on demand kills a pod (OOMKilled, exit 137),
completes it, or loses a whole node. An image whose name contains "missing" fails to pull.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class SimNode:
    name: str
    gpu_class: str
    gpus: int


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedKubelet:
    def __init__(self, api_client: client.ApiClient, nodes: list[SimNode]) -> None:
        self.core = client.CoreV1Api(api_client)
        self.nodes: dict[str, SimNode] = {}
        self._initial = nodes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handled: set[str] = set()  # pod uids already started or failed
        self.error = ""

    # -- nodes -----------------------------------------------------------------------------------

    def add_node(self, node: SimNode) -> None:
        allocatable = {"cpu": "64", "memory": "512Gi", "pods": "110", GPU: str(node.gpus)}
        self.core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node.name,
                    "labels": {
                        "kubernetes.io/hostname": node.name,
                        "ironbowl.io/gpu-class": node.gpu_class,
                    },
                },
                "spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]},
            }
        )
        self.core.patch_node_status(
            node.name,
            {
                "status": {
                    "capacity": allocatable,
                    "allocatable": allocatable,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "simulated kubelet is posting ready status",
                            "lastHeartbeatTime": _now(),
                            "lastTransitionTime": _now(),
                        }
                    ],
                }
            },
        )
        # New nodes carry node.kubernetes.io/not-ready until the (disabled) lifecycle controller
        # sees them Ready: lift it, keep the GPU taint.
        self.core.patch_node(
            node.name,
            {"spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]}},
        )
        self.nodes[node.name] = node

    def lose_node(self, name: str) -> list[str]:
        """The node stops answering: its pods are failed with reason NodeLost (what the node
        controller reports), marked as disruption targets, and the Node is deleted."""
        lost = []
        for pod in self._pods_on(name):
            self._set_status(
                pod,
                {
                    "phase": "Failed",
                    "reason": "NodeLost",
                    "message": f"Node {name} which was running pod {pod.metadata.name}"
                    " is unresponsive",
                    "conditions": [
                        {
                            "type": "DisruptionTarget",
                            "status": "True",
                            "reason": "DeletionByTaintManager",
                            "lastTransitionTime": _now(),
                        },
                        {"type": "Ready", "status": "False", "lastTransitionTime": _now()},
                    ],
                },
            )
            lost.append(pod.metadata.name)
        self.core.delete_node(name)
        self.nodes.pop(name, None)
        return lost

    # -- pods ------------------------------------------------------------------------------------

    def kill(self, namespace: str, name: str, *, exit_code: int, reason: str) -> None:
        pod = self.core.read_namespaced_pod(name, namespace)
        self._terminate(pod, "Failed", exit_code, reason)

    def complete(self, namespace: str, name: str) -> None:
        pod = self.core.read_namespaced_pod(name, namespace)
        self._terminate(pod, "Succeeded", 0, "Completed")

    def _terminate(self, pod: client.V1Pod, phase: str, exit_code: int, reason: str) -> None:
        self._set_status(
            pod,
            {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": _now()}],
                "containerStatuses": [
                    self._container(
                        pod,
                        {
                            "terminated": {
                                "exitCode": exit_code,
                                "reason": reason,
                                "startedAt": _now(),
                                "finishedAt": _now(),
                            }
                        },
                        ready=False,
                    )
                ],
            },
        )

    def _pods_on(self, node: str) -> list[client.V1Pod]:
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
        return list(pods.items)

    @staticmethod
    def _container(
        pod: client.V1Pod, state: dict[str, object], *, ready: bool
    ) -> dict[str, object]:
        container = pod.spec.containers[0]
        return {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "state": state,
        }

    def _set_status(self, pod: client.V1Pod, status: dict[str, object]) -> None:
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def _step(self) -> None:
        for pod in self.core.list_pod_for_all_namespaces().items:
            node = pod.spec.node_name
            if node not in self.nodes:
                continue
            if pod.metadata.deletion_timestamp is not None:
                # The kubelet confirms a graceful deletion once the containers stopped.
                try:
                    self.core.delete_namespaced_pod(
                        pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
                    )
                except ApiException as error:
                    if error.status != 404:
                        raise
                continue
            if pod.status.phase != "Pending" or pod.metadata.uid in self._handled:
                continue
            self._handled.add(pod.metadata.uid)
            if "missing" in pod.spec.containers[0].image:
                waiting = {
                    "reason": "ErrImagePull",
                    "message": f'pull access denied for "{pod.spec.containers[0].image}"',
                }
                status: dict[str, object] = {
                    "phase": "Pending",
                    "containerStatuses": [self._container(pod, {"waiting": waiting}, ready=False)],
                }
            else:
                status = {
                    "phase": "Running",
                    "hostIP": "10.0.0.1",
                    "podIP": "10.1.0.1",
                    "startTime": _now(),
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": _now()},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": _now()},
                        {"type": "Ready", "status": "True", "lastTransitionTime": _now()},
                    ],
                    "containerStatuses": [
                        self._container(pod, {"running": {"startedAt": _now()}}, ready=True)
                    ],
                }
            try:
                self._set_status(pod, status)
            except ApiException as error:
                if error.status != 404:
                    raise

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for node in self._initial:
            self.add_node(node)
        self._thread = threading.Thread(target=self._run, name="simulated-kubelet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._step()
            except Exception as error:  # a test reads `error`; the loop keeps going
                self.error = f"{type(error).__name__}: {error}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
