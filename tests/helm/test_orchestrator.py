"""The orchestrator's Deployment and its least-privilege cluster RBAC, as the chart renders them.

Real: helm template over the chart and its CI values files. Simulated: no API server evaluates
the RBAC rules; the tests read the rendered ClusterRole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm.rendering import (
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    container_of,
    default_values,
    env_of,
    pod_specs,
    render,
    required_secret_args,
    values_file,
)

HEARTBEAT = "/tmp/ironbowl-orchestrator-alive"  # noqa: S108


def granted(docs: list[Manifest]) -> dict[tuple[str, str], set[str]]:
    (role,) = by_kind(docs, "ClusterRole").values()
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_orchestrator_runs_the_kubernetes_backend_with_the_pools(
    default_docs: list[Manifest],
) -> None:
    deployment = by_kind(default_docs, "Deployment")[f"{RELEASE}-orchestrator"]
    assert deployment["spec"]["replicas"] == 2  # one leader (database lock), one standby
    orchestrator = container_of(default_docs, "orchestrator")
    assert orchestrator["command"] == [
        "python",
        "manage.py",
        "orchestrate",
        "--backend",
        "kubernetes",
        "--pools",
        "/etc/ironbowl/pools.json",
    ]
    mount = next(m for m in orchestrator["volumeMounts"] if m["mountPath"] == "/etc/ironbowl")
    volumes = {
        volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes[mount["name"]]["configMap"]["name"] == f"{RELEASE}-pools"
    env = env_of(orchestrator, default_docs)
    assert env["INFERENCE_BACKEND"] == "kubernetes"
    assert env["INFERENCE_CONTROL_URL"] == f"http://{RELEASE}-web.{NAMESPACE}.svc:80"
    assert env["KUBERNETES_NAMESPACE_PREFIX"] == "ironbowl-org-"
    assert env["KUBERNETES_TARGET_VERSION"] == "1.33"
    assert env["ORCHESTRATOR_HEARTBEAT_FILE"] == HEARTBEAT
    assert "KUBERNETES_KUEUE_QUEUE" not in env
    # Workers call the web Service by its cluster name: Django's host check must let them in.
    web_env = env_of(container_of(default_docs, "web"), default_docs)
    assert f"{RELEASE}-web.{NAMESPACE}.svc" in web_env["ALLOWED_HOSTS"].split(",")


def test_orchestrator_probes_check_the_heartbeat_file(default_docs: list[Manifest]) -> None:
    orchestrator = container_of(default_docs, "orchestrator")
    assert "readinessProbe" not in orchestrator  # it serves nothing
    for probe in ("startupProbe", "livenessProbe"):
        assert orchestrator[probe]["exec"]["command"] == [
            "sh",
            "-c",
            f"test -f {HEARTBEAT} && find {HEARTBEAT} -mmin -2 | grep -q .",
        ]
    mounts = {mount["mountPath"] for mount in orchestrator["volumeMounts"]}
    assert "/tmp" in mounts  # noqa: S108  (the file is writable under a read-only root)


def test_kueue_queue_and_control_url_come_from_values(gpu_docs: list[Manifest]) -> None:
    env = env_of(container_of(gpu_docs, "orchestrator"), gpu_docs)
    assert env["KUBERNETES_KUEUE_QUEUE"] == "gpu-batch"
    assert env["KUBERNETES_NAMESPACE_PREFIX"] == "ib-org-"
    assert env["INFERENCE_CONTROL_URL"] == "http://ironbowl-control.ironbowl.svc.cluster.local:8080"
    hosts = env["ALLOWED_HOSTS"].split(",")
    assert "ironbowl-control.ironbowl.svc.cluster.local" in hosts


def test_pools_change_rolls_the_orchestrator(
    helm: str, default_docs: list[Manifest], tmp_path: Path
) -> None:
    inference = default_values()["inference"]
    inference["pools"][0]["maximum"] = 3
    changed = render(
        helm, *required_secret_args(), "-f", values_file(tmp_path, {"inference": inference})
    )
    annotations = [
        by_kind(docs, "Deployment")[f"{RELEASE}-orchestrator"]["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/pools"]
        for docs in (default_docs, changed)
    ]
    assert annotations[0] != annotations[1]


def test_rbac_grants_exactly_what_the_backend_uses(default_docs: list[Manifest]) -> None:
    assert granted(default_docs) == {
        ("", "namespaces"): {"get", "list", "watch", "create", "patch"},
        ("", "resourcequotas"): {"get", "list", "watch", "create", "patch", "update"},
        ("", "pods"): {"get", "list", "watch", "create", "delete"},
        ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
        ("", "secrets"): {"create", "patch", "delete"},
        ("", "events"): {"list", "watch"},
    }


@pytest.mark.parametrize("fixture", ["default_docs", "full_docs", "gpu_docs"])
def test_rbac_has_no_wildcards_and_cannot_enumerate_secrets(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    docs: list[Manifest] = request.getfixturevalue(fixture)
    (role,) = by_kind(docs, "ClusterRole").values()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
        assert "resourceNames" not in rule or rule["resourceNames"], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    grants = granted(docs)
    # Listing or watching Secrets cluster-wide would read every Secret of every namespace.
    assert not {"list", "watch"} & grants[("", "secrets")]
    # No RBAC objects, no node or cluster-scoped writes beyond namespaces.
    assert not any(group == "rbac.authorization.k8s.io" for group, _ in grants)
    assert ("", "nodes") not in grants
    (binding,) = by_kind(docs, "ClusterRoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (account,) = by_kind(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account,
            "namespace": binding["subjects"][0]["namespace"],
        }
    ]


def test_only_the_orchestrator_gets_an_api_token(default_docs: list[Manifest]) -> None:
    (account,) = by_kind(default_docs, "ServiceAccount")
    for name, spec in pod_specs(default_docs).items():
        if name == f"Deployment/{RELEASE}-orchestrator":
            assert spec["serviceAccountName"] == account
            assert spec["automountServiceAccountToken"] is True
        else:
            assert spec["automountServiceAccountToken"] is False, name


def test_disabled_orchestrator_renders_no_cluster_access(helm: str) -> None:
    docs = render(helm, *required_secret_args(), "--set", "orchestrator.enabled=false")
    kinds = {doc["kind"] for doc in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"}
    assert f"{RELEASE}-orchestrator" not in by_kind(docs, "Deployment")
    assert f"{RELEASE}-pools" not in by_kind(docs, "ConfigMap")
    hosts = env_of(container_of(docs, "web"), docs)["ALLOWED_HOSTS"].split(",")
    assert f"{RELEASE}-web.{NAMESPACE}.svc" not in hosts
