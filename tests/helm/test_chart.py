"""The Helm chart, linted and rendered by a real `helm`, and checked against Kubernetes schemas.

helm comes from $IRONBOWL_HELM or <repo>/.cache/tools/bin/helm (`bash scripts/fetch-helm.sh`
installs it offline). Without it these tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "ironbowl"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "ironbowl"
NAMESPACE = "ironbowl-system"
KUBE_VERSIONS = ("1.29.0", "1.33.0")

Manifest = dict[str, Any]

SECRET_KEY = "test-only-" + "x" * 50
REQUIRED_SECRETS = {
    "secretKey": SECRET_KEY,
    "databaseUrl": "postgres://ironbowl:pw@postgres:5432/ironbowl",
    "redisUrl": "redis://redis:6379/0",
}


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _helm_path() -> Path:
    configured = os.environ.get("IRONBOWL_HELM")
    return Path(configured) if configured else REPO_ROOT / ".cache" / "tools" / "bin" / "helm"


@pytest.fixture(scope="module")
def helm() -> str:
    path = _helm_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        _skip_or_fail(f"helm not found at {path}: run scripts/fetch-helm.sh")
    return str(path)


def _set_args(values: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        args += ["--set-string", f"{key}={value}"]
    return args


def _required_secret_args(**overrides: str) -> list[str]:
    values = {f"secrets.{key}": value for key, value in REQUIRED_SECRETS.items()}
    values.update(overrides)
    return _set_args({key: value for key, value in values.items() if value is not None})


@functools.cache
def _run_template(
    helm: str, kube_version: str, args: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(helm: str, *args: str, kube_version: str = "1.33.0") -> list[Manifest]:
    result = _run_template(helm, kube_version, tuple(args))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(helm: str, *args: str) -> str:
    result = _run_template(helm, "1.33.0", tuple(args))
    assert result.returncode != 0, "rendering should have failed"
    return result.stderr


def by_kind(docs: list[Manifest], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    specs = {}
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Pod":
            specs[name] = doc["spec"]
        elif doc["kind"] in ("Deployment", "Job"):
            specs[name] = doc["spec"]["template"]["spec"]
    return specs


def containers(spec: dict[str, Any]) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.fixture(scope="module")
def default_docs(helm: str) -> list[Manifest]:
    return render(helm, *_required_secret_args())


@pytest.fixture(scope="module")
def full_docs(helm: str) -> list[Manifest]:
    return render(helm, "-f", str(CHART / "ci" / "all-features-values.yaml"))


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
    kinds = sorted({doc["kind"] for doc in default_docs})
    assert kinds == ["Deployment", "Job", "Pod", "PodDisruptionBudget", "Secret", "Service"]
    assert set(by_kind(default_docs, "Deployment")) == {
        f"{RELEASE}-web",
        f"{RELEASE}-worker",
        f"{RELEASE}-beat",
    }
    assert set(by_kind(default_docs, "Service")) == {f"{RELEASE}-web"}


def test_full_render_adds_ingress_autoscaling_and_orchestrator(full_docs: list[Manifest]) -> None:
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


def test_every_container_has_requests_equal_to_limits(full_docs: list[Manifest]) -> None:
    specs = pod_specs(full_docs)
    assert len(specs) >= 6
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
    env = env_of(web)
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
            env = env_of(container)
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
            ):
                assert env[key]["secretKeyRef"]["key"] == key, where
            names = [item["name"] for item in container["env"]]
            assert len(names) == len(set(names)), f"{where}: duplicate env names"


def test_celery_worker_and_exactly_one_beat(default_docs: list[Manifest], helm: str) -> None:
    deployments = by_kind(default_docs, "Deployment")
    worker = deployments[f"{RELEASE}-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][:6] == ["celery", "-A", "ironbowl", "worker", "--loglevel", "INFO"]
    beat = deployments[f"{RELEASE}-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
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
    error = render_error(helm, *_required_secret_args(), "--set", "beat.replicas=2")
    assert "replicas" in error


def test_migrations_run_as_a_hook_before_install_and_upgrade(default_docs: list[Manifest]) -> None:
    job = by_kind(default_docs, "Job")[f"{RELEASE}-migrations"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # On first install the release's Secret does not exist yet when the hook runs: the job reads
    # a hook Secret created just before it.
    secret_name = env_of(spec["containers"][0])["DATABASE_URL"]["secretKeyRef"]["name"]
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
    args = _set_args(
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
    assert message in render_error(helm, *_required_secret_args(**override))


def test_typo_in_values_is_rejected(helm: str) -> None:
    error = render_error(helm, *_required_secret_args(), "--set", "web.replicsa=3")
    assert "replicsa" in error


def test_existing_secret_replaces_secret_values(helm: str) -> None:
    docs = render(helm, "--set", "secrets.existingSecret=ironbowl-env")
    assert by_kind(docs, "Secret") == {}
    for name, spec in pod_specs(docs).items():
        for container in containers(spec):
            for item in container.get("env", []):
                if "valueFrom" in item:
                    assert item["valueFrom"]["secretKeyRef"]["name"] == "ironbowl-env", name


def test_orchestrator_and_its_rbac_are_absent_by_default(default_docs: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in default_docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"}
    assert f"{RELEASE}-orchestrator" not in by_kind(default_docs, "Deployment")


def test_orchestrator_when_enabled_gets_cluster_rbac(helm: str) -> None:
    docs = render(helm, *_required_secret_args(), "--set", "orchestrator.enabled=true")
    deployment = by_kind(docs, "Deployment")[f"{RELEASE}-orchestrator"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "manage.py", "orchestrate"]
    (account,) = by_kind(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == account
    (role,) = by_kind(docs, "ClusterRole").values()
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for key in [("", "namespaces"), ("", "resourcequotas"), ("", "pods"), ("batch", "jobs")]:
        assert {"get", "list", "watch", "create", "patch", "delete"} <= granted[key], key
    assert "get" in granted[("", "pods/log")]
    assert {"list", "watch"} <= granted[("", "events")]
    (binding,) = by_kind(docs, "ClusterRoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    # Only the orchestrator talks to the Kubernetes API.
    for name, spec in pod_specs(docs).items():
        if name != f"Deployment/{RELEASE}-orchestrator":
            assert spec["automountServiceAccountToken"] is False, name


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        _skip_or_fail("kubernetes-validate is not installed (pip install kubernetes-validate)")
    return kubernetes_validate


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
    result = _run_template(helm, "1.28.0", tuple(_required_secret_args()))
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr
