"""deploy/kubernetes (the kustomize base) and the Dockerfile: the base renders with `kubectl
kustomize`, every object validates against the Kubernetes schemas (kubernetes-validate, offline),
the DaemonSet takes what it needs and no more, its config passes check-config and, run by the
daemon against a node's /var/log/pods laid out in a tmp dir, reads an application's CRI log and
not its own; where a Docker engine answers, the image is built and run."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from oai400d.config import split_listen
from oai400d.sources.globs import excluded, matches

from .daemon_harness import DEFAULT_ALERTS, ERROR_LINE, DaemonProcess, status, wait_until

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes"
# The schemas checked: the oldest release still in the big providers' extended support, and a
# recent one (kubernetes-validate ships both, offline).
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
NAMESPACE = "oai400d"
LOG_MOUNTS = {
    "/var/log/pods": "pods",
    "/var/log/containers": "containers",
    "/var/lib/docker/containers": "docker-containers",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BASE / name).read_text())
    return data


def daemonset() -> dict[str, Any]:
    return load("daemonset.yaml")


def container() -> dict[str, Any]:
    found: dict[str, Any] = daemonset()["spec"]["template"]["spec"]["containers"][0]
    return found


def config() -> dict[str, Any]:
    return tomllib.loads((BASE / "config.toml").read_text())


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/kubernetes`, once (about 0.1 s); skipped without kubectl, since
    assembling the base by other means would test that, not kustomize."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization is not rendered here")
    result = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_base_renders_to_its_four_objects_in_one_namespace(
    rendered: list[dict[str, Any]],
) -> None:
    """The namespace, the service account, the ConfigMap made from config.toml (a hashed name,
    so an edit rolls the pods) and the DaemonSet that mounts that very name; no Secret (the real
    one is never applied from git), every object in the namespace "oai400d" and validating."""
    kinds = {obj["kind"]: obj for obj in rendered}
    assert sorted(kinds) == ["ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"]
    for obj in rendered:
        validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE
    assert kinds["Namespace"]["metadata"]["name"] == NAMESPACE
    configmap = kinds["ConfigMap"]
    assert re.fullmatch(r"oai400d-config-[a-z0-9]{10}", configmap["metadata"]["name"])
    assert configmap["data"]["config.toml"] == (BASE / "config.toml").read_text()
    volumes = kinds["DaemonSet"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": configmap["metadata"]["name"]}} in volumes


def test_every_resource_file_validates_on_its_own() -> None:
    """Each YAML file of the base (and the Secret's example) is a valid object for both
    Kubernetes versions, with or without kubectl."""
    files = sorted(BASE.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "daemonset.yaml",
        "namespace.yaml",
        "serviceaccount.yaml",
        "secret.example.yaml",
    }
    for path in files:
        if path.name == "kustomization.yaml":
            continue
        for obj in yaml.safe_load_all(path.read_text()):
            try:
                validate(obj)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{path.name}: {exc}") from None


def test_the_validator_rejects_a_wrong_daemonset() -> None:
    """The schema check can fail: a mount whose readOnly is a string is refused."""
    wrong = copy.deepcopy(daemonset())
    wrong["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)


def test_the_logs_are_mounted_read_only_and_the_state_on_the_node() -> None:
    """/var/log/pods, /var/log/containers and /var/lib/docker/containers are hostPath mounts at
    the same paths (symlinks resolve), read-only; the state DB's directory is the node's
    /var/lib/oai400d, writable, and config.toml's state.path is in it; the config comes from the
    ConfigMap, read-only; /tmp is a small memory emptyDir; nothing else is mounted."""
    spec = daemonset()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    for path, name in LOG_MOUNTS.items():
        assert mounts[path] == {"name": name, "mountPath": path, "readOnly": True}
        assert volumes[name]["hostPath"]["path"] == path
    assert volumes["pods"]["hostPath"]["type"] == "Directory"
    state = mounts["/var/lib/oai400d"]
    assert not state.get("readOnly", False)
    assert volumes[state["name"]]["hostPath"] == {
        "path": "/var/lib/oai400d",
        "type": "DirectoryOrCreate",
    }
    assert Path(config()["state"]["path"]).parent == Path("/var/lib/oai400d")
    assert mounts["/etc/oai400d"]["readOnly"] is True
    assert volumes["config"]["configMap"]["name"] == "oai400d-config"
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"
    assert sorted(mounts) == sorted([*LOG_MOUNTS, "/var/lib/oai400d", "/etc/oai400d", "/tmp"])
    cache = {e["name"]: e.get("value") for e in container()["env"]}["OAI400D_CACHE_DIR"]
    assert cache is not None and cache.startswith("/var/lib/oai400d/")  # survives a restart


def test_the_pod_takes_no_privilege_it_does_not_need() -> None:
    """Read-only root file system, every capability dropped and none added, no privilege
    escalation, not privileged, seccomp RuntimeDefault, no service account token, uid 0 only as
    the owner of the kubelet's root-owned logs; tolerates every taint (every node)."""
    spec = daemonset()["spec"]["template"]["spec"]
    pod, own = spec["securityContext"], container()["securityContext"]
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["privileged"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (pod["runAsUser"], pod["runAsNonRoot"]) == (0, False)
    assert spec["automountServiceAccountToken"] is False
    assert load("serviceaccount.yaml")["automountServiceAccountToken"] is False
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert "hostNetwork" not in spec and "hostPID" not in spec


def test_probes_and_scraping_point_at_the_metrics_listener() -> None:
    """The container port "metrics" is config.toml's metrics.listen port, on every address; the
    startup and liveness probes ask /healthz and readiness /readyz on it; the pod's
    prometheus.io annotations name the same port and /metrics."""
    template = daemonset()["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    host, port = split_listen(config()["metrics"]["listen"])
    assert (host, ports["metrics"]) == ("0.0.0.0", port)
    probes = {
        kind: container()[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"] == {"path": "/healthz", "port": "metrics"}
    assert probes["livenessProbe"] == {"path": "/healthz", "port": "metrics"}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "metrics"}
    # liveness gives the loop more than the daemon's own 30 s bound before a restart
    live = container()["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30
    annotations = template["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def test_secrets_are_optional_environment_from_the_one_secret() -> None:
    """Every secret is an environment variable from the Secret "oai400d", optional; the keys
    read are exactly those secret.example.yaml lists (set or commented), whose values are
    empty: no token in git."""
    env = [e for e in container()["env"] if "valueFrom" in e]
    refs = [e["valueFrom"]["secretKeyRef"] for e in env]
    assert all(ref["name"] == "oai400d" and ref["optional"] is True for ref in refs)
    assert [e["name"] for e in env] == [ref["key"] for ref in refs]
    assert {e["name"] for e in env} >= {"OPENAI_API_KEY", "SLACK_BOT_TOKEN", "OAI400D_FLEET_DSN"}
    example = load("secret.example.yaml")
    assert example["metadata"] == {"name": "oai400d", "namespace": NAMESPACE}
    assert all(value == "" for value in example["stringData"].values())
    text = (BASE / "secret.example.yaml").read_text()
    listed = set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]+): \"\"", text, re.MULTILINE))
    assert listed == {e["name"] for e in env}
    assert "secret" not in (BASE / "kustomization.yaml").read_text().split("resources:")[1]


def test_resources_are_sized_from_the_benchmarks() -> None:
    """Requests and limits on CPU and memory; the memory limit leaves room above the worst RSS
    measured (BENCHMARKS.md: 56 MiB at 50k lines/s, ~70 MiB while compiling) and the request
    is above the idle RSS (47 MiB)."""
    resources = container()["resources"]
    mib = {"Mi": 1, "Gi": 1024}

    def in_mib(value: str) -> int:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", value).groups()  # type: ignore[union-attr]
        return int(number) * mib[unit]

    assert in_mib(resources["requests"]["memory"]) >= 64
    assert in_mib(resources["limits"]["memory"]) >= 2 * 70
    assert resources["requests"]["cpu"] and resources["limits"]["cpu"]


def test_the_config_passes_check_config(tmp_path: Path) -> None:
    """`oai400d check-config` accepts config.toml as the ConfigMap carries it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "oai400d.cli",
            "check-config",
            "--config",
            str(BASE / "config.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_the_globs_take_every_namespace_but_the_daemons_own() -> None:
    """logs.paths less logs.exclude take a container log of any namespace (also ones that
    share a prefix with "oai400d") and never one of the namespace "oai400d": its console
    notifications quote the errors they report and would be read back."""
    paths, exclude = config()["logs"]["paths"], config()["logs"]["exclude"]

    def taken(namespace: str) -> bool:
        path = f"/var/log/pods/{namespace}_web-7d9f_0c1e/app/0.log"
        return any(matches(p, path) for p in paths) and not excluded(exclude, path)

    for namespace in (
        "default",
        "kube-system",
        "o",
        "oa",
        "oai",
        "oai4",
        "oai40",
        "oai400",
        "oai400d-staging",
        "oai400e",
        "obs",
        "zz",
    ):
        assert taken(namespace), namespace
    assert not taken(NAMESPACE)
    assert not any(
        matches(p, "/var/log/pods/default_web_0c1e/app/0.log.20261207-101010.gz") for p in paths
    )


def toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of them read alike in TOML


def test_the_deployed_config_reads_an_application_pod_and_not_its_own(tmp_path: Path) -> None:
    """The daemon run with config.toml, /var/log/pods and /var/lib/oai400d moved under tmp (and
    fast alerts): a CRI-wrapped traceback in an application pod's log opens one alert naming
    that file; the same error in the oai400d pod's own log opens none."""
    node = tmp_path / "node"
    settings = config()
    for key in ("paths", "exclude"):
        settings["logs"][key] = [
            p.replace("/var/log/pods", str(node / "var/log/pods")) for p in settings["logs"][key]
        ]
    settings["logs"]["reconcile_interval"] = "1s"
    settings["state"]["path"] = str(node / "var/lib/oai400d/state.db")
    settings["metrics"]["listen"] = "127.0.0.1:0"
    settings["alerts"] = dict(DEFAULT_ALERTS)
    settings["probes"] = {"enabled": False}
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    (node / "var/lib/oai400d").mkdir(parents=True)
    app = node / "var/log/pods/shop_web-7d9f_0c1e/web/0.log"
    own = node / "var/log/pods/oai400d_oai400d-x7k2p_9a8b/oai400d/0.log"
    for log in (app, own):
        log.parent.mkdir(parents=True)
        log.write_text("")
    daemon = DaemonProcess(path)
    try:
        daemon.wait_ready()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")  # the runtime's form
        for log in (own, app):
            with log.open("a") as handle:
                handle.write(f"{stamp} stderr F {ERROR_LINE}\n")
        opened = daemon.wait_for(lambda n: n["kind"] == "opened")
        assert opened[0]["files"] == [str(app)]
        # Both files were there at start: a followed one is in the state DB from then on.
        followed = wait_until(
            lambda: [f["path"] for f in status(path)["files"] if f["offset"] > 0],
            what="the application's log read and committed",
        )
        assert followed == [str(app)]
        assert [f["path"] for f in status(path)["files"]] == [str(app)]
    finally:
        daemon.stop()
    assert [n["files"] for n in daemon.notifications() if n["kind"] == "opened"] == [[str(app)]]


def docker_engine() -> str | None:
    """Why the image cannot be built here, or None when a Docker engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client installed"
    probe = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "docker info fails (no engine to build with): " + probe.stderr.strip()[:200]
    return None


def test_the_dockerfile_builds_a_small_non_root_image_of_the_wheel() -> None:
    """Without an engine, what the Dockerfile says: two stages from one base argument, the
    wheel installed into a venv that alone is copied, a non-root user, ENTRYPOINT oai400d and
    the DaemonSet's arguments as CMD; .dockerignore keeps the checkout's clutter out."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert stages == [("${PYTHON_IMAGE}", "build"), ("${PYTHON_IMAGE}", "")]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    final = text.split("\nFROM ${PYTHON_IMAGE}\n")[1]
    assert "COPY --from=build /opt/oai400d /opt/oai400d" in final
    assert "pip wheel" not in final and "apt-get" not in text
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert 'ENTRYPOINT ["oai400d"]' in final
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert cmd == container()["args"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "bench"} <= set(ignored)


def test_the_image_runs_version_and_classify() -> None:
    """Where a Docker engine answers: the image builds, `--version` prints the package's, and
    `classify -` finds the error in a log line given on stdin (exit 0)."""
    reason = docker_engine()
    if reason is not None:
        pytest.skip(reason)
    docker = str(shutil.which("docker"))
    tag = "oai400d-test:latest"
    subprocess.run([docker, "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    version = subprocess.run(
        [docker, "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and "0.1.0" in version.stdout + version.stderr
    found = subprocess.run(
        [docker, "run", "--rm", "-i", tag, "classify", "--json", "-"],
        input=ERROR_LINE + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout.splitlines()[0])["category"] == "auth.invalid_api_key"
