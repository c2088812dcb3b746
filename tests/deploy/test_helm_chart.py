"""The Helm chart deploy/helm/hiverl, checked without a cluster.

1. `helm lint --strict` passes and `helm template` renders for several value sets (defaults; four
   Redis servers with autoscaled actors and scheduling; external services without auth on the
   CPU; a paused hive);
2. every rendered manifest validates against the OpenAPI schemas of a pinned Kubernetes version
   (kubernetes-validate, strict: unknown fields fail);
3. the compose test's invariants: every role has probes (compose's health checks) and resource
   requests and limits, no secret in values.yaml or in a manifest, the learner asks for one GPU;
4. each role runs compose's command with compose's environment, and the settings do what values.yaml
   says (Redis servers -> shard list, replicas or an autoscaler, pausing), and bad values fail
   (values.schema.json: no password keys, no unknown keys; the templates' own checks).

helm is built by scripts/setup.sh (Go module proxy, cached under $HIVERL_CACHE); without it these
tests fail, never skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hiverl.services.catalog import cache_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "hiverl"
KUBERNETES_VERSION = "1.37.0"  # the schemas (kubernetes-validate) and helm's --kube-version
ROLES = ("learner", "actors", "evaluator", "monitor", "indexer", "dashboard")
COMPOSE_SERVICE = {role: role for role in ROLES} | {"actors": "game"}
# The Redis user of each role that uses Redis (docker/redis/start.sh's users; the indexer uses none).
REDIS_USER = {"learner": "learner", "actors": "actor", "evaluator": "evaluator", "monitor": "monitor"} | {
    "dashboard": "dashboard"
}
REDIS_PASSWORD = {role: f"REDIS_{user.upper()}_PASSWORD" for role, user in REDIS_USER.items()}
SECRET_VARIABLES = {*REDIS_PASSWORD.values(), "ELASTICSEARCH_PASSWORD", "MONGODB_PASSWORD"}  # feed the URLs
SHARDS = ["redis-0.redis:6379", "redis-1.redis:6379", "redis-2.redis:6379", "redis-3.redis:6379"]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sharded-autoscaled": {
        "redis": {"hosts": SHARDS},
        "actors": {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 64}},
        "learner": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H200"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
        },
        "image": {"registry": "registry.example.com/hiverl", "tag": "0.1.0", "pullSecrets": ["registry"]},
        "hive": {
            "sessionId": "pong-1",
            "envId": "ALE/Pong-v5",
            "extraEnv": [{"name": "CONFIG_PRESET", "value": "pong"}],
        },
    },
    "external-cpu": {
        "redis": {
            "hosts": ["redis.example.net:6380"],
            "tls": True,
            "users": {"monitor": {"username": "hive-monitor", "passwordKey": "monitor"}},
        },
        "elasticsearch": {"scheme": "https", "host": "es.example.net:443", "auth": {"existingSecret": ""}},
        "mongodb": {
            "host": "mongo.example.net:27017",
            "auth": {"existingSecret": "archive", "passwordKey": "pw"},
        },
        "kafka": {"bootstrapServers": "k1.example.net:9092,k2.example.net:9092"},
        "learner": {"gpu": 0},
        "indexer": {"enabled": False},
        "persistence": {
            "runs": {"enabled": False},
            "models": {"existingClaim": "hive-models"},
            "storageClass": "fast",
        },
    },
    "paused": {"hive": {"paused": True}, "actors": {"autoscaling": {"enabled": True}}},
}


# -- helm ---------------------------------------------------------------------------------------------


def helm_version() -> str:
    """The version scripts/setup.sh builds (pinned there only)."""
    match = re.search(r"^HELM_VERSION=(\S+)$", (REPO / "scripts" / "setup.sh").read_text(), re.MULTILINE)
    assert match, "scripts/setup.sh pins HELM_VERSION"
    return match[1]


@pytest.fixture(scope="module")
def helm() -> str:
    binary = Path(os.environ.get("HIVERL_HELM") or cache_dir() / f"helm-{helm_version()}" / "bin" / "helm")
    if not binary.is_file():
        pytest.fail(f"helm {helm_version()} is missing at {binary}: run scripts/setup.sh (it builds helm)")
    out = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith(f"v{helm_version()}"), out.stdout + out.stderr
    return str(binary)


def _values_file(tmp: Path, name: str, values: dict[str, Any]) -> list[str]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args, "--kube-version", KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELM_CACHE_HOME": "/nonexistent", "HELM_CONFIG_HOME": "/nonexistent"},
    )


def render(helm: str, tmp: Path, values: dict[str, Any], name: str = "values") -> list[dict[str, Any]]:
    result = run_helm(
        helm, "template", "hive", str(CHART), "--namespace", "rl", *_values_file(tmp, name, values)
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(helm: str, tmp: Path, values: dict[str, Any], *options: str) -> str:
    result = run_helm(helm, "template", "hive", str(CHART), *options, *_values_file(tmp, "bad", values))
    assert result.returncode != 0, "the chart should refuse these values"
    return result.stderr


@pytest.fixture(scope="module")
def rendered(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("values")
    return {name: render(helm, tmp, values, name) for name, values in VALUE_SETS.items()}


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """role -> its Deployment."""
    return {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc
        for doc in docs
        if doc["kind"] == "Deployment"
    }


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = pod(workload)["containers"]
    return dict(container)


def all_containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod(workload).get("initContainers", [])
    yield from pod(workload)["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


# -- 1. lint and render -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_passes(helm: str, tmp_path: Path, name: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *_values_file(tmp_path, name, VALUE_SETS[name]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_every_value_set_renders_every_role(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(workloads(rendered["defaults"])) == set(ROLES)
    assert set(workloads(rendered["external-cpu"])) == set(ROLES) - {"indexer"}
    kinds = {doc["kind"] for docs in rendered.values() for doc in docs}
    assert kinds == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
    }


# -- 2. the Kubernetes schemas ------------------------------------------------------------------------


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        return [f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}"]
    return []


def test_every_manifest_follows_the_kubernetes_schema(rendered: dict[str, list[dict[str, Any]]]) -> None:
    errors = [error for docs in rendered.values() for doc in docs for error in _schema_errors(doc)]
    assert errors == []


def test_the_schema_validation_is_real(rendered: dict[str, list[dict[str, Any]]]) -> None:
    import copy

    import kubernetes_validate

    learner = copy.deepcopy(workloads(rendered["defaults"])["learner"])
    learner["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert _schema_errors(learner)
    learner = copy.deepcopy(workloads(rendered["defaults"])["learner"])
    learner["spec"]["replicas"] = "one"
    assert _schema_errors(learner)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate({**learner, "apiVersion": "apps/v9"}, KUBERNETES_VERSION, strict=True)


# -- 3. the compose test's invariants -----------------------------------------------------------------


def test_every_container_has_resource_requests_and_limits(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        for role, workload in workloads(docs).items():
            for container in all_containers(workload):
                resources = container.get("resources", {})
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources.get(kind, {})), (
                        f"{name}/{role}/{container['name']}"
                    )


def test_every_role_has_startup_readiness_and_liveness_probes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, docs in rendered.items():
        for role, workload in workloads(docs).items():
            container = main_container(workload)
            kinds = ("startupProbe", "readinessProbe", "livenessProbe")
            assert all(container.get(kind) for kind in kinds), f"{name}/{role} lacks a probe"
            timing = {"periodSeconds", "timeoutSeconds", "failureThreshold"}
            checks = [{k: v for k, v in container[kind].items() if k not in timing} for kind in kinds]
            assert checks[0] == checks[1] == checks[2], f"{name}/{role}: the probes check the same thing"


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}
    return override


def _compose(*files: str) -> dict[str, Any]:
    """The services of compose files merged in order (not interpolated: names and commands only)."""
    merged: dict[str, Any] = {}
    for file in files:
        merged = _merge(merged, yaml.safe_load((REPO / file).read_text())["services"])
    return merged


def test_probes_are_the_compose_health_checks(rendered: dict[str, list[dict[str, Any]]]) -> None:
    compose = _compose("compose.yaml")
    sharded = _compose("compose.yaml", "compose.shards.yaml")
    roles = workloads(rendered["defaults"])
    for role in ("learner", "evaluator", "monitor"):
        # compose.yaml pings REDIS_URL; with several servers (compose.shards.yaml) every one of them
        assert (
            roles[role]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
            == (sharded[role]["healthcheck"]["test"][1:])
        )
        assert "Endpoints().redis_url" in compose[role]["healthcheck"]["test"][-1]
    for role in ("actors", "indexer"):
        probe = main_container(roles[role])["readinessProbe"]["exec"]["command"]
        assert probe == compose[COMPOSE_SERVICE[role]]["healthcheck"]["test"][1:], role
    dashboard = main_container(roles["dashboard"])
    assert "urlopen('http://127.0.0.1:8050/login'" in compose["dashboard"]["healthcheck"]["test"][-1]
    assert dashboard["readinessProbe"]["httpGet"] == {"path": "/login", "port": "http"}
    assert {"name": "http", "containerPort": 8050, "protocol": "TCP"} in dashboard["ports"]


def _secret_like(key: str) -> bool:
    names_a_secret = ("existingSecret", "passwordKey", "pullSecrets")  # names of Secrets, not their data
    return (
        bool(re.search(r"password|secret|token|credential", key, re.IGNORECASE)) and key not in names_a_secret
    )


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_no_secret_in_the_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    secret_keys = [path for path, _ in _walk(values) if _secret_like(path.rsplit(".", 1)[-1])]
    assert secret_keys == [], "passwords come from Kubernetes Secrets (existingSecret), never from values"
    for path, value in _walk(values):
        if isinstance(value, str):
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{path}: credentials in a URL"


def test_secrets_reach_the_pods_only_through_secret_refs(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        assert not [doc for doc in docs if doc["kind"] in ("Secret", "ConfigMap")], name
        for role, workload in workloads(docs).items():
            for container in all_containers(workload):
                defined: set[str] = set()
                for item in container.get("env", []):
                    where = f"{name}/{role}/{container['name']}: {item['name']}"
                    if _secret_like(item["name"]):
                        assert set(item) == {"name", "valueFrom"} and "secretKeyRef" in item["valueFrom"], (
                            where
                        )
                    value = str(item.get("value", ""))
                    for userinfo in re.findall(r"://([^/@\s]*)@", value):
                        # a URL's password is a reference to a variable of a Secret, defined above it
                        _user, _, password = userinfo.partition(":")
                        reference = re.fullmatch(r"\$\(([A-Z_]+)\)", password)
                        assert reference and reference[1] in defined, f"{where}: {password!r}"
                    if "valueFrom" in item:
                        defined.add(item["name"])


def test_the_learner_asks_for_one_gpu(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("defaults", "sharded-autoscaled"):
        learner = workloads(rendered[name])["learner"]
        resources = main_container(learner)["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1, name
        assert env_of(main_container(learner))["CONFIG_DEVICE"] == "auto"
        assert learner["spec"]["replicas"] == 1 and learner["spec"]["strategy"] == {"type": "Recreate"}
        # the sampler processes' shared memory (compose's shm_size)
        assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}} in pod(learner)[
            "volumes"
        ]
        for role in set(ROLES) - {"learner"}:  # only the learner holds a GPU
            for container in all_containers(workloads(rendered[name])[role]):
                assert "nvidia.com/gpu" not in str(container["resources"]), f"{name}/{role}"
    # GPU nodes' usual taint is tolerated by default; values replace the scheduling settings
    gpu_taint = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert pod(workloads(rendered["defaults"])["learner"])["tolerations"] == [gpu_taint]
    scheduled = pod(workloads(rendered["sharded-autoscaled"])["learner"])
    assert scheduled["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert scheduled["tolerations"] == VALUE_SETS["sharded-autoscaled"]["learner"]["tolerations"]
    # gpu: 0 learns on the CPU (compose.cpu.yaml's counterpart)
    cpu_learner = main_container(workloads(rendered["external-cpu"])["learner"])
    assert "nvidia.com/gpu" not in str(cpu_learner["resources"])
    assert env_of(cpu_learner)["CONFIG_DEVICE"] == "cpu"


# -- 4. compose's commands and environment; the settings ---------------------------------------------


def test_roles_run_compose_commands_with_compose_environment(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    compose = _compose("compose.yaml")
    sharded = _compose("compose.yaml", "compose.shards.yaml")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    session = values["hive"]["sessionId"]
    for name, docs in (("defaults", compose), ("sharded-autoscaled", sharded)):
        roles = workloads(rendered[name])
        for role, workload in roles.items():
            service = docs[COMPOSE_SERVICE[role]]
            container = main_container(workload)
            expected = set(service["environment"]) | (SECRET_VARIABLES & set(env_of(container)))
            if role in ("learner", "evaluator", "actors") and name == "sharded-autoscaled":
                expected |= {"CONFIG_PRESET"}  # hive.extraEnv
            assert set(env_of(container)) == expected, f"{name}/{role}"
    roles = workloads(rendered["defaults"])
    for role in ("learner", "evaluator", "actors", "indexer"):
        assert main_container(roles[role])["command"] == compose[COMPOSE_SERVICE[role]]["command"], role
    monitor = compose["monitor"]["command"]
    assert [word.replace("${CONFIG_SESSION_ID:-compose}", session) for word in monitor] == main_container(
        roles["monitor"]
    )["command"]
    dashboard = compose["dashboard"]["command"]
    assert [word.replace("$$", "$") for word in dashboard] == main_container(roles["dashboard"])["command"]
    [setup] = pod(roles["indexer"])["initContainers"]
    assert setup["command"] == compose["telemetry-setup"]["command"]
    # the volumes compose mounts, at the same paths
    for role in ROLES:
        mounts = {m["mountPath"] for m in main_container(roles[role]).get("volumeMounts", [])} - {"/dev/shm"}
        service = compose[COMPOSE_SERVICE[role]]
        assert mounts == {volume.split(":")[1] for volume in service.get("volumes", [])}, role


def test_redis_servers_become_the_memory_shards(
    rendered: dict[str, list[dict[str, Any]]], helm: str, tmp_path: Path
) -> None:
    defaults = env_of(main_container(workloads(rendered["defaults"])["learner"]))
    assert defaults["REDIS_URL"] == "redis://learner:$(REDIS_LEARNER_PASSWORD)@redis-master:6379/0"
    assert "CONFIG_MEMORY__SHARDS" not in defaults
    for role, workload in workloads(rendered["sharded-autoscaled"]).items():
        env = env_of(main_container(workload))
        if role not in REDIS_USER:
            continue
        user, password = REDIS_USER[role], REDIS_PASSWORD[role]
        assert env["REDIS_URL"].split(",") == [f"redis://{user}:$({password})@{h}/0" for h in SHARDS], role
        if role in ("learner", "evaluator", "actors"):
            assert env["CONFIG_MEMORY__SHARDS"] == "4"
    external = env_of(main_container(workloads(rendered["external-cpu"])["monitor"]))
    assert external["REDIS_URL"] == "rediss://hive-monitor:$(REDIS_MONITOR_PASSWORD)@redis.example.net:6380/0"
    assert external["REDIS_MONITOR_PASSWORD"] == {"secretKeyRef": {"name": "redis", "key": "monitor"}}
    dashboard = env_of(main_container(workloads(rendered["external-cpu"])["dashboard"]))
    assert dashboard["ELASTICSEARCH_URL"] == "https://es.example.net:443"
    assert "ELASTICSEARCH_PASSWORD" not in dashboard
    assert external["MONGODB_URI"].startswith(
        "mongodb://hiverl:$(MONGODB_PASSWORD)@mongo.example.net:27017/hiverl?"
    )
    assert external["KAFKA_BOOTSTRAP_SERVERS"] == "k1.example.net:9092,k2.example.net:9092"
    eight = render(helm, tmp_path, {"redis": {"hosts": SHARDS}, "memory": {"shards": 8}})
    assert env_of(main_container(workloads(eight)["learner"]))["CONFIG_MEMORY__SHARDS"] == "8"
    error = render_error(helm, tmp_path, {"redis": {"hosts": SHARDS}, "memory": {"shards": 6}})
    assert "memory.shards=6: a multiple of the 4 Redis servers" in error


def test_each_role_gets_only_its_own_credentials(
    rendered: dict[str, list[dict[str, Any]]], helm: str, tmp_path: Path
) -> None:
    """As in compose.yaml: its own Redis user (none for the indexer), Elasticsearch only for the indexer
    (the writer) and the dashboard (the reader, when one is given), one password variable each."""
    for name, docs in rendered.items():
        for role, workload in workloads(docs).items():
            for container in all_containers(workload):
                env = env_of(container)
                where = f"{name}/{role}/{container['name']}"
                services = ("REDIS_", "ELASTICSEARCH_", "MONGODB_")
                passwords = {v for v in env if v.startswith(services) and v.endswith("_PASSWORD")}
                if role in REDIS_USER:
                    user, password = REDIS_USER[role], REDIS_PASSWORD[role]
                    if (name, role) == ("external-cpu", "monitor"):  # redis.users.monitor given
                        user = "hive-monitor"
                    for url in env["REDIS_URL"].split(","):
                        assert re.match(rf"rediss?://{user}:\$\({password}\)@", url), where
                    key = env[password]["secretKeyRef"]["key"]
                    assert key == ("monitor" if user == "hive-monitor" else f"{user}-password"), where
                else:
                    assert "REDIS_URL" not in env, where
                has_es = role in ("indexer", "dashboard")
                assert ("ELASTICSEARCH_URL" in env) == has_es, where
                es_password = has_es and name != "external-cpu"  # there Elasticsearch has no password
                expected = {REDIS_PASSWORD.get(role), "MONGODB_PASSWORD"} | (
                    {"ELASTICSEARCH_PASSWORD"} if es_password else set()
                )
                assert passwords == expected - {None}, where
    reader = {
        "elasticsearch": {"dashboard": {"username": "hiverl-dashboard", "passwordKey": "dashboard-password"}}
    }
    roles = workloads(render(helm, tmp_path, reader, "reader"))
    dashboard, indexer = (env_of(main_container(roles[role])) for role in ("dashboard", "indexer"))
    assert (
        dashboard["ELASTICSEARCH_URL"]
        == "http://hiverl-dashboard:$(ELASTICSEARCH_PASSWORD)@elasticsearch:9200"
    )
    assert dashboard["ELASTICSEARCH_PASSWORD"]["secretKeyRef"]["key"] == "dashboard-password"
    assert indexer["ELASTICSEARCH_URL"] == "http://elastic:$(ELASTICSEARCH_PASSWORD)@elasticsearch:9200"
    assert indexer["ELASTICSEARCH_PASSWORD"]["secretKeyRef"]["key"] == "elasticsearch-password"
    error = render_error(
        helm, tmp_path, {"redis": {"users": {"actor": {"username": "", "passwordKey": "x"}}}}
    )
    assert "'/redis/users/actor/username'" in error


def test_actors_are_replicas_or_autoscaled(
    rendered: dict[str, list[dict[str, Any]]], helm: str, tmp_path: Path
) -> None:
    actors = workloads(rendered["defaults"])["actors"]
    assert actors["spec"]["replicas"] == 4
    assert not [doc for doc in rendered["defaults"] if doc["kind"] == "HorizontalPodAutoscaler"]
    scaled = rendered["sharded-autoscaled"]
    assert "replicas" not in workloads(scaled)["actors"]["spec"]  # the autoscaler owns the count
    [hpa] = [doc for doc in scaled if doc["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": workloads(scaled)["actors"]["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 64)
    # at most 256 actors in a hive: values.schema.json says so, and the template (schema skipped) too
    too_many = {"actors": {"autoscaling": {"enabled": True, "maxReplicas": 300}}}
    assert "'/actors/autoscaling/maxReplicas': maximum: got 300, want 256" in render_error(
        helm, tmp_path, too_many
    )
    assert "at most 256 replicas" in render_error(helm, tmp_path, too_many, "--skip-schema-validation")
    assert "at most 256 replicas" in render_error(
        helm, tmp_path, {"actors": {"replicas": 257}}, "--skip-schema-validation"
    )


def test_a_paused_hive_runs_no_learner_evaluator_or_actor(rendered: dict[str, list[dict[str, Any]]]) -> None:
    roles = workloads(rendered["paused"])
    for role in ("learner", "evaluator", "actors"):
        assert roles[role]["spec"]["replicas"] == 0, role
    for role in ("monitor", "indexer", "dashboard"):
        assert roles[role]["spec"]["replicas"] == 1, role
    assert not [doc for doc in rendered["paused"] if doc["kind"] == "HorizontalPodAutoscaler"]


def test_images_volumes_and_required_values(
    rendered: dict[str, list[dict[str, Any]]], helm: str, tmp_path: Path
) -> None:
    images = {main_container(w)["image"] for w in workloads(rendered["sharded-autoscaled"]).values()}
    assert images == {
        f"registry.example.com/hiverl/hiverl-{name}:0.1.0" for name in ("game", "monitor", "dashboard")
    }
    assert pod(workloads(rendered["sharded-autoscaled"])["learner"])["imagePullSecrets"] == [
        {"name": "registry"}
    ]
    # claims: the chart's own, an existing one, or an emptyDir when disabled
    claims = {
        doc["metadata"]["name"]: doc
        for doc in rendered["external-cpu"]
        if doc["kind"] == "PersistentVolumeClaim"
    }
    assert (
        set(claims) == {"hive-hiverl-dashboard"}
        and claims["hive-hiverl-dashboard"]["spec"]["storageClassName"] == "fast"
    )
    volumes = {v["name"]: v for v in pod(workloads(rendered["external-cpu"])["learner"])["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "hive-models"}
    assert volumes["runs"] == {"name": "runs", "emptyDir": {}}
    for doc in rendered["defaults"]:
        if doc["kind"] == "PersistentVolumeClaim":
            assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "never latest" in render_error(helm, tmp_path, {"image": {"tag": "latest"}})
    assert "dashboard.admin.existingSecret" in render_error(
        helm, tmp_path, {"dashboard": {"admin": {"existingSecret": ""}}}
    )
    assert "'/learner/gpu': maximum: got 2, want 1" in render_error(helm, tmp_path, {"learner": {"gpu": 2}})
    two_gpus = render_error(helm, tmp_path, {"learner": {"gpu": 2}}, "--skip-schema-validation")
    assert "learner.gpu: 1 (or 0 for the CPU)" in two_gpus


def test_the_values_schema_refuses_passwords_and_typos(helm: str, tmp_path: Path) -> None:
    """values.schema.json: an auth block takes a Secret's name and key only; unknown keys fail."""
    error = render_error(helm, tmp_path, {"redis": {"auth": {"password": "hunter22"}}})
    assert "'/redis/auth': additional properties 'password' not allowed" in error
    error = render_error(helm, tmp_path, {"actors": {"replica": 8}})
    assert "additional properties 'replica' not allowed" in error
    assert "'/redis/hosts/0'" in render_error(helm, tmp_path, {"redis": {"hosts": ["redis://x:6379/0"]}})
