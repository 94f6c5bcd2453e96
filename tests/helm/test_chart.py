"""The chart's control plane, linted and rendered by a real `helm` and checked against the
Kubernetes schemas of the target versions.

Real: helm (lint --strict, template), the chart, its values files and schema, kubernetes-validate's
bundled OpenAPI schemas. Simulated: nothing is installed; no cluster runs the manifests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helm.rendering import (
    CHART,
    CI_VALUES,
    KUBE_VERSIONS,
    RELEASE,
    REQUIRED_SECRETS,
    Manifest,
    by_kind,
    container_of,
    containers,
    env_of,
    pod_specs,
    render,
    render_error,
    required_secret_args,
    run_template,
    set_args,
)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda path: path.name)
def test_lint_strict_passes_with_valid_values(helm: str, values_file: Path) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_default_render_has_the_control_plane(default_docs: list[Manifest]) -> None:
    assert set(by_kind(default_docs, "Deployment")) == {
        f"{RELEASE}-web",
        f"{RELEASE}-realtime",
        f"{RELEASE}-worker",
        f"{RELEASE}-beat",
        f"{RELEASE}-orchestrator",
    }
    assert set(by_kind(default_docs, "Service")) == {f"{RELEASE}-web", f"{RELEASE}-realtime"}
    assert set(by_kind(default_docs, "ConfigMap")) == {f"{RELEASE}-config", f"{RELEASE}-pools"}
    # Node drains keep a standby orchestrator and serving pods; beat's single pod has no budget.
    assert set(by_kind(default_docs, "PodDisruptionBudget")) == {
        f"{RELEASE}-web",
        f"{RELEASE}-realtime",
        f"{RELEASE}-worker",
        f"{RELEASE}-orchestrator",
    }
    for name, deployment in by_kind(default_docs, "Deployment").items():
        selector = deployment["spec"]["selector"]
        pdbs = [
            pdb
            for pdb in by_kind(default_docs, "PodDisruptionBudget").values()
            if pdb["spec"]["selector"] == selector
        ]
        assert len(pdbs) == (0 if name.endswith("-beat") else 1), name


def test_full_render_adds_ingress_and_autoscaling(full_docs: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in full_docs}
    assert {
        "Ingress",
        "HorizontalPodAutoscaler",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    } <= kinds
    deployments = by_kind(full_docs, "Deployment")
    # Autoscaled deployments leave replicas to the HPA, so that an upgrade does not reset them.
    assert "replicas" not in deployments[f"{RELEASE}-web"]["spec"]
    assert "replicas" not in deployments[f"{RELEASE}-worker"]["spec"]
    assert set(by_kind(full_docs, "HorizontalPodAutoscaler")) == {
        f"{RELEASE}-web",
        f"{RELEASE}-worker",
    }


def test_every_long_running_container_has_probes(full_docs: list[Manifest]) -> None:
    deployments = by_kind(full_docs, "Deployment")
    assert len(deployments) == 5
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "livenessProbe" in container, f"{name} container {container['name']}"


def test_every_container_has_requests_equal_to_limits(full_docs: list[Manifest]) -> None:
    specs = pod_specs(full_docs)
    assert len(specs) >= 7
    for name, spec in specs.items():
        for container in containers(spec):
            resources = container["resources"]
            where = f"{name} container {container['name']}"
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert resources["requests"] == resources["limits"], where


def test_every_container_is_locked_down(full_docs: list[Manifest]) -> None:
    for name, spec in pod_specs(full_docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        scratch = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in containers(spec):
            security = container["securityContext"]
            where = f"{name} container {container['name']}"
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            if name.startswith("Pod/"):
                continue  # the helm test pod writes nothing
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in scratch[mounts["/tmp"]], where  # noqa: S108


def test_web_serves_with_probes_and_metrics(default_docs: list[Manifest]) -> None:
    deployment = by_kind(default_docs, "Deployment")[f"{RELEASE}-web"]
    pod = deployment["spec"]["template"]
    (web,) = pod["spec"]["containers"]
    assert web["command"] == [
        "gunicorn",
        "ironbowl.asgi:application",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "-c",
        "/app/platform/ironbowl/gunicorn_conf.py",
        "--bind",
        "0.0.0.0:8000",
    ]
    assert web["workingDir"] == "/app"
    assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["port"] == "http"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8000"
    env = env_of(web, default_docs)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/var/run/prometheus"
    assert env["IRONBOWL_ENV"] == "production"
    mounts = {mount["mountPath"]: mount["name"] for mount in web["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/run/prometheus"]]
    # The probes' Host header must pass Django's ALLOWED_HOSTS check.
    host = web["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"]
    assert host in env["ALLOWED_HOSTS"].split(",")
    service = by_kind(default_docs, "Service")[f"{RELEASE}-web"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = by_kind(default_docs, "PodDisruptionBudget")[f"{RELEASE}-web"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_configuration_reaches_every_container(full_docs: list[Manifest]) -> None:
    for name, spec in pod_specs(full_docs).items():
        if name.startswith("Pod/"):
            continue
        for container in containers(spec):
            env = env_of(container, full_docs)
            where = f"{name} container {container['name']}"
            assert env["IRONBOWL_ENV"] == "production", where
            assert env["ALLOWED_HOSTS"].split(",")[0] == "ironbowl.example.org", where
            assert env["TIME_ZONE"] == "Asia/Shanghai", where
            assert env["MEDIA_ROOT"].startswith("/"), where
            assert env["LOG_LEVEL"] == "DEBUG", where  # extraEnv replaces the chart's value
            for key in (
                "SECRET_KEY",
                "DATABASE_URL",
                "REDIS_URL",
                "STRIPE_SECRET_KEY",
                "STRIPE_WEBHOOK_SECRET",
                "INFERENCE_LLM_API_KEY",
                "STREAM_KEY_ENCRYPTION_KEY",
                "STREAM_KEY_ENCRYPTION_KEY_FALLBACKS",
            ):
                assert env[key]["secretKeyRef"]["key"] == key, where
            names = [item["name"] for item in container["env"]]
            assert len(names) == len(set(names)), f"{where}: duplicate env names"


def test_shared_settings_live_in_a_config_map_that_rolls_the_pods(helm: str) -> None:
    docs = render(helm, *required_secret_args())
    config = by_kind(docs, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert config["TIME_ZONE"] == "Asia/Shanghai"
    assert not {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & set(config)
    changed = render(helm, *required_secret_args(), "--set", "config.timeZone=Europe/Berlin")
    for name in ("web", "realtime", "worker", "beat", "orchestrator"):
        before = by_kind(docs, "Deployment")[f"{RELEASE}-{name}"]["spec"]["template"]
        after = by_kind(changed, "Deployment")[f"{RELEASE}-{name}"]["spec"]["template"]
        assert container_of(changed, name)["envFrom"][0] == {
            "configMapRef": {"name": f"{RELEASE}-config"}
        }
        assert (
            before["metadata"]["annotations"]["checksum/config"]
            != after["metadata"]["annotations"]["checksum/config"]
        ), name


def test_realtime_serves_websockets_on_its_own_pods(full_docs: list[Manifest]) -> None:
    realtime = container_of(full_docs, "realtime")
    assert realtime["command"][:2] == ["uvicorn", "ironbowl.asgi:application"]
    assert realtime["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = by_kind(full_docs, "Service")[f"{RELEASE}-realtime"]
    deployment = by_kind(full_docs, "Deployment")[f"{RELEASE}-realtime"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (ingress,) = by_kind(full_docs, "Ingress").values()
    backends = {
        path["path"]: path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"/ws/": f"{RELEASE}-realtime", "/": f"{RELEASE}-web"}


def test_without_realtime_the_web_pods_keep_the_websockets(helm: str) -> None:
    docs = render(
        helm, *required_secret_args(), "--set", "realtime.enabled=false,ingress.enabled=true"
    )
    assert f"{RELEASE}-realtime" not in by_kind(docs, "Deployment")
    (ingress,) = by_kind(docs, "Ingress").values()
    paths = [path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert paths == ["/"]


def test_celery_worker_and_exactly_one_beat(default_docs: list[Manifest], helm: str) -> None:
    deployments = by_kind(default_docs, "Deployment")
    worker = deployments[f"{RELEASE}-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][:6] == ["celery", "-A", "ironbowl", "worker", "--loglevel", "INFO"]
    beat = deployments[f"{RELEASE}-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    probe = worker["livenessProbe"]["exec"]["command"][-1]
    assert probe.startswith(
        'exec celery -A ironbowl inspect ping --destination "celery@${HOSTNAME}"'
    )
    beat_probe = beat["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert "celerybeat-schedule" in beat_probe["exec"]["command"][-1]
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "celery",
        "-A",
        "ironbowl",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        "/tmp/celerybeat-schedule",  # noqa: S108
    ]
    # There is no knob for a second scheduler.
    error = render_error(helm, *required_secret_args(), "--set", "beat.replicas=2")
    assert "replicas" in error


def test_celery_worker_serves_its_own_metrics(default_docs: list[Manifest], helm: str) -> None:
    """The worker's main process serves what its pool processes counted (rollups, usage) on
    port 9100, from a multiprocess folder of its own, and the pods say where to scrape."""
    pod = by_kind(default_docs, "Deployment")[f"{RELEASE}-worker"]["spec"]["template"]
    (worker,) = pod["spec"]["containers"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert "readinessProbe" not in worker  # no Service sends it traffic
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "9100"
    env = env_of(worker, default_docs)
    assert env["WORKER_METRICS_PORT"] == "9100"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/var/run/prometheus"
    mounts = {mount["mountPath"]: mount["name"] for mount in worker["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/run/prometheus"]]

    unscraped = render(helm, *required_secret_args(), "--set", "worker.metrics.scrape=false")
    pod = by_kind(unscraped, "Deployment")[f"{RELEASE}-worker"]["spec"]["template"]
    assert not any(key.startswith("prometheus.io/") for key in pod["metadata"]["annotations"])
    assert pod["spec"]["containers"][0]["ports"][0]["containerPort"] == 9100


def test_migrations_run_as_a_hook_before_install_and_upgrade(default_docs: list[Manifest]) -> None:
    job = by_kind(default_docs, "Job")[f"{RELEASE}-migrations"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # On first install the release's Secret does not exist yet when the hook runs: the job reads
    # a hook Secret created just before it.
    env = env_of(spec["containers"][0])
    # The release's ConfigMap does not exist yet either: the settings are inlined.
    assert "envFrom" not in spec["containers"][0]
    assert env["IRONBOWL_ENV"] == "production"
    secret_name = env["DATABASE_URL"]["secretKeyRef"]["name"]
    secret = by_kind(default_docs, "Secret")[secret_name]
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"].get("helm.sh/hook-weight", "0")
    )
    assert secret["stringData"]["DATABASE_URL"] == REQUIRED_SECRETS["databaseUrl"]


@pytest.mark.parametrize(
    ("value", "variable"),
    [("secretKey", "SECRET_KEY"), ("databaseUrl", "DATABASE_URL"), ("redisUrl", "REDIS_URL")],
)
def test_missing_required_secret_fails_naming_it(helm: str, value: str, variable: str) -> None:
    args = set_args(
        {f"secrets.{key}": secret for key, secret in REQUIRED_SECRETS.items() if key != value}
    )
    error = render_error(helm, *args)
    assert variable in error
    assert f"secrets.{value}" in error
    assert "existingSecret" in error


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"secrets.secretKey": "short"}, "at least 50 characters"),
        ({"secrets.databaseUrl": "sqlite:///tmp/db"}, "DATABASE_URL"),
    ],
)
def test_values_the_app_would_reject_fail_rendering(
    helm: str, override: dict[str, str], message: str
) -> None:
    assert message in render_error(helm, *required_secret_args(**override))


def test_typo_in_values_is_rejected(helm: str) -> None:
    error = render_error(helm, *required_secret_args(), "--set", "web.replicsa=3")
    assert "replicsa" in error


def test_existing_secret_replaces_secret_values(helm: str) -> None:
    docs = render(helm, "--set", "secrets.existingSecret=ironbowl-env")
    assert by_kind(docs, "Secret") == {}
    for name, spec in pod_specs(docs).items():
        for container in containers(spec):
            for item in container.get("env", []):
                if "valueFrom" in item:
                    assert item["valueFrom"]["secretKeyRef"]["name"] == "ironbowl-env", name


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda path: path.name)
def test_manifests_validate_against_kubernetes_schemas(
    helm: str, kubernetes_validate: Any, kube_version: str, values_file: Path
) -> None:
    docs = render(helm, "-f", str(values_file), kube_version=kube_version)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes "
                f"{kube_version}: {error.message} at {list(error.absolute_path)}"
            )


def test_older_kubernetes_is_refused(helm: str) -> None:
    result = run_template(helm, "1.29.0", tuple(required_secret_args()))
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr
