"""The compose stack, checked without a Docker engine.

1. compose.yaml (alone and with compose.cpu.yaml) validates against the Compose Specification
   schema, after interpolating .env.example the way `docker compose` does;
2. it mirrors the local service runner's catalog (versions, heap, broker and cluster settings);
3. ports, topic, index and database names agree with the code's constants;
4. `game` scales (no container name, no host port, a GPU reservation the CPU override drops);
5. health checks, depends_on conditions, restart policies, named volumes, pinned images;
6. every environment variable the compose file gives a hiverl service is one the code reads, and
   every `${VAR}` has a line in .env.example with the same default.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hiverl import endpoints
from hiverl.services.catalog import CATALOG

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
PYTHON_SERVICES = ("monitor", "learner", "evaluator", "game", "dashboard", "indexer", "telemetry-setup")
ONE_SHOTS = ("es-setup", "kibana-setup", "telemetry-setup")
#: The Redis user of each service that uses Redis (docker/redis/start.sh); the indexers use none.
REDIS_USERS = {"learner": "learner", "game": "actor", "evaluator": "evaluator", "monitor": "monitor"} | {
    "dashboard": "dashboard"
}
#: The Elasticsearch user variable of each service that uses Elasticsearch (es-setup makes the users).
ES_USERS = {
    "indexer": "HIVERL_ES_USER",
    "telemetry-setup": "HIVERL_ES_USER",
    "logstash": "HIVERL_ES_USER",
} | {"dashboard": "HIVERL_ES_DASHBOARD_USER"}


# -- loading and interpolation like `docker compose` -------------------------------------------------


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's `!reset` and `!override` merge tags."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    value = (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)  # type: ignore[arg-type]
    )
    return ("!reset", value)


_ComposeLoader.add_constructor("!reset", _reset)
_ComposeLoader.add_constructor("!override", _reset)


def load(name: str) -> dict[str, Any]:
    data = yaml.load((REPO / name).read_text(), Loader=_ComposeLoader)  # a SafeLoader subclass
    assert isinstance(data, dict)
    return data


_VARIABLE = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-|:?\?)((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$` rules."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, tuple):
        return (value[0], interpolate(value[1], env))
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name = match[2] or match[5]
        operator, argument = match[3], match[4] or ""
        present = name in env
        empty = not env.get(name)
        if operator in (":-", "-"):
            use_default = empty if operator == ":-" else not present
            return interpolate(argument, env) if use_default else env[name]
        if operator in (":?", "?"):
            if empty if operator == ":?" else not present:
                raise InterpolationError(f"required variable {name} is missing a value: {argument}")
            return env[name]
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merge, `!reset` replaces, other values replace."""
    if isinstance(override, tuple) and override[0] == "!reset":
        return copy.deepcopy(override[1])
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value) if key in base else merge(None, value)
        return merged
    return copy.deepcopy(override)


def env_example() -> dict[str, str]:
    """Variables of .env.example (commented-out ones excluded)."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match[1]] = match[2]
    return values


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load("compose.yaml")


@pytest.fixture(scope="module")
def stack(raw: dict[str, Any]) -> dict[str, Any]:
    """compose.yaml interpolated with .env.example."""
    return dict(interpolate(raw, env_example()))


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(stack["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


# -- 1. the Compose Specification --------------------------------------------------------------------


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _errors(data: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in _validator().iter_errors(data)
    ]


def test_compose_file_follows_the_compose_specification(stack: dict[str, Any]) -> None:
    assert _errors(stack) == []


def test_cpu_override_follows_the_specification_and_drops_the_gpu(raw: dict[str, Any]) -> None:
    merged = interpolate(merge(raw, load("compose.cpu.yaml")), env_example())
    assert _errors(merged) == []
    learner = merged["services"]["learner"]
    assert learner["deploy"]["resources"]["reservations"]["devices"] == []
    assert environment(learner)["CONFIG_DEVICE"] == "cpu"
    # everything else of the learner service is unchanged
    assert environment(learner)["REDIS_URL"].startswith("redis://")


def test_the_schema_catches_mistakes(stack: dict[str, Any]) -> None:
    """The validation is real: a misspelled key or a wrong type is reported."""
    broken = copy.deepcopy(stack)
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    broken["services"]["kafka"]["restart"] = ["always"]
    errors = _errors(broken)
    assert any("healthchek" in error for error in errors), errors
    assert any(error.startswith("services/kafka/restart") for error in errors), errors


def test_missing_secrets_stop_compose_with_a_clear_message(raw: dict[str, Any]) -> None:
    env = env_example()
    del env["REDIS_PASSWORD"]
    with pytest.raises(InterpolationError, match="REDIS_PASSWORD"):
        interpolate(raw, env)


# -- 2. one source of truth with the local service runner (hiverl/services/catalog.py) ---------------


def _image(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = str(service["image"]).rpartition(":")
    return name, tag


def test_kafka_mirrors_the_catalog(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert _image(kafka) == ("apache/kafka", CATALOG.kafka.version)
    env = environment(kafka)
    for key, value in CATALOG.kafka.broker_settings:
        variable = "KAFKA_" + key.upper().replace(".", "_")
        assert env.get(variable) == value, f"{variable} must be {value!r} as in the catalog"
    heap = CATALOG.kafka.heap
    assert env["KAFKA_HEAP_OPTS"] == f"-Xms{heap} -Xmx{heap}"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert not any("ZOOKEEPER" in key for key in env)
    assert "zookeeper" not in services


def _listeners(value: str) -> dict[str, int]:
    """``NAME://host:port,...`` -> {NAME: port}."""
    return {item.split("://")[0]: int(item.rpartition(":")[2]) for item in value.split(",")}


def test_kafka_published_listener_takes_only_scram_logins_and_acls_rule(
    raw: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The published listener is SASL (SCRAM-SHA-512) and the authorizer denies what no ACL allows;
    the PLAINTEXT listeners, whose ANONYMOUS principal is the super user, stay inside the network.
    tests/hiverl/telemetry/test_kafka_users.py runs a broker with these very settings."""
    env = environment(services["kafka"])
    listeners = _listeners(env["KAFKA_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    published = set(_host_ports(services["kafka"]))
    assert published == {listeners["EXTERNAL"]}
    for name, port in listeners.items():
        expected = "SASL_PLAINTEXT" if port in published else "PLAINTEXT"
        assert protocols[name] == expected, f"listener {name} on port {port} must be {expected}"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    jaas = env["KAFKA_LISTENER_NAME_EXTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
    assert jaas == "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:ANONYMOUS"  # the PLAINTEXT listeners' principal, nobody else
    assert {env["KAFKA_INTER_BROKER_LISTENER_NAME"], env["KAFKA_CONTROLLER_LISTENER_NAMES"]} <= {
        name for name, protocol in protocols.items() if protocol == "PLAINTEXT"
    }
    advertised = raw["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://${KAFKA_ADVERTISED_HOST:-127.0.0.1}:${KAFKA_HOST_PORT:-19092}" in advertised
    # apache/kafka's start script demands a JAAS file in KAFKA_OPTS when an advertised listener's
    # name matches SASL_*://, and its environment-to-properties step drops a variable whose value
    # holds "=": neither may happen to these settings.
    assert "SASL_" not in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not [name for name, value in env.items() if name.startswith("KAFKA_") and "=" in value]


def test_only_the_setup_one_shot_holds_the_kafka_users_passwords(services: dict[str, dict[str, Any]]) -> None:
    from hiverl.telemetry.kafka_users import USER_TOPICS, password_variable

    variables = [password_variable(user) for user in USER_TOPICS]
    example = env_example()
    setup = environment(services["telemetry-setup"])
    assert {variable: setup[variable] for variable in variables} == {v: example[v] for v in variables}
    assert len({example[variable] for variable in variables}) == len(variables)  # one password per user
    for name, service in services.items():
        env = environment(service)
        if name != "telemetry-setup":
            assert not set(variables) & set(env), f"{name} holds a Kafka user's password"
        # inside the network every service is on the internal listener, without a login
        assert "KAFKA_SECURITY_PROTOCOL" not in env and "KAFKA_SASL_PASSWORD" not in env, name


def test_elastic_stack_mirrors_the_catalog(services: dict[str, dict[str, Any]]) -> None:
    version = CATALOG.elasticsearch.version
    assert _image(services["elasticsearch"]) == ("docker.elastic.co/elasticsearch/elasticsearch", version)
    assert _image(services["es-setup"]) == ("docker.elastic.co/elasticsearch/elasticsearch", version)
    assert _image(services["kibana"]) == ("docker.elastic.co/kibana/kibana", version)
    assert _image(services["logstash"]) == ("docker.elastic.co/logstash/logstash", version)
    env = environment(services["elasticsearch"])
    deliberate = {"xpack.security.enabled": "true"}  # the local runner is loopback-only; compose is not
    for key, value in CATALOG.elasticsearch.settings:
        assert env.get(key) == deliberate.get(key, value), f"{key} differs from the catalog"
    heap = CATALOG.elasticsearch.heap
    assert env["ES_JAVA_OPTS"] == f"-Xms{heap} -Xmx{heap}"


def test_redis_loads_the_project_config(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in redis["volumes"]}
    config = CATALOG.redis.config_file.relative_to(REPO).as_posix()
    assert mounts["/usr/local/etc/redis/redis.conf"] == f"./{config}"
    start = (REPO / "docker" / "redis" / "start.sh").read_text()
    assert 'redis-server "${REDIS_CONF:-/usr/local/etc/redis/redis.conf}"' in start
    assert '--dir "${REDIS_DATA:-/data}"' in start and mounts["/data"] == "redis-data"
    assert "user default off" in start  # only the ACL user gets in (see the live test below)
    name, tag = _image(redis)
    major_minor = tuple(int(part) for part in tag.split("-")[0].split(".")[:2])
    minimum = tuple(int(part) for part in CATALOG.redis.min_version.split("."))
    assert name == "redis" and major_minor >= minimum


def test_mongo_runs_with_auth_and_an_scram_sha_256_app_user(services: dict[str, dict[str, Any]]) -> None:
    mongo = services["mongo"]
    env = environment(mongo)
    assert env["MONGO_INITDB_ROOT_USERNAME"] and env["MONGO_INITDB_ROOT_PASSWORD"]  # turns auth on
    init = [v for v in mongo["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert len(init) == 1
    script = (REPO / init[0].split(":")[0]).read_text()
    assert 'mechanisms: ["SCRAM-SHA-256"]' in script and "process.env.MONGO_APP_PASSWORD" in script
    for name in PYTHON_SERVICES:
        uri = environment(services[name])["MONGODB_URI"]
        assert "authMechanism=SCRAM-SHA-256" in uri and f"@mongo:27017/{env['MONGO_APP_DB']}?" in uri


# -- 3. ports and names agree with the code ------------------------------------------------------------


def _host_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, for `127.0.0.1:HOST:CONTAINER` entries."""
    result = {}
    for entry in service.get("ports", []):
        address, host, container = str(entry).split(":")
        assert address == "127.0.0.1", f"{entry}: publish on loopback only"
        result[int(container)] = int(host)
    return result


def test_host_ports_are_the_projects_local_ports(services: dict[str, dict[str, Any]]) -> None:
    assert _host_ports(services["redis"]) == {6379: endpoints.REDIS_PORT}
    assert _host_ports(services["kafka"]) == {endpoints.KAFKA_PORT: endpoints.KAFKA_PORT}
    assert _host_ports(services["elasticsearch"]) == {9200: endpoints.ELASTICSEARCH_PORT}
    assert _host_ports(services["mongo"]) == {27017: endpoints.MONGODB_PORT}
    kafka = environment(services["kafka"])
    assert f"EXTERNAL://127.0.0.1:{endpoints.KAFKA_PORT}" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_service_urls_point_at_listening_ports(services: dict[str, dict[str, Any]]) -> None:
    kafka = environment(services["kafka"])
    assert "INTERNAL://:9092" in kafka["KAFKA_LISTENERS"]
    assert "INTERNAL://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    redis_start = (REPO / "docker" / "redis" / "start.sh").read_text()
    assert '--port "${REDIS_PORT:-6379}"' in redis_start
    for name in PYTHON_SERVICES:
        env = environment(services[name])
        if name in REDIS_USERS:
            assert re.fullmatch(r"redis://[^:@]+:[^@]+@redis:6379/0", env["REDIS_URL"]), name
        if name in ES_USERS:
            assert re.fullmatch(r"http://[^:@]+:[^@]+@elasticsearch:9200", env["ELASTICSEARCH_URL"]), name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["HIVERL_HOME"] == "/var/lib/hiverl"


def test_each_service_signs_in_as_its_roles_own_user(services: dict[str, dict[str, Any]]) -> None:
    """Redis: learner, actors, evaluator, monitor and dashboard each as its own user with its own
    password, the indexers not at all; Elasticsearch: the indexers as the writer, the dashboard as
    the reader, the hive's roles and the monitor not at all."""
    example = env_example()
    redis_env = environment(services["redis"])
    for name in (*PYTHON_SERVICES, "logstash"):
        env = environment(services[name])
        user = REDIS_USERS.get(name)
        if user is None:
            assert "REDIS_URL" not in env, f"{name} does not use Redis"
        else:
            variable = f"REDIS_{user.upper()}_PASSWORD"
            assert env["REDIS_URL"] == f"redis://{user}:{example[variable]}@redis:6379/0", name
            assert redis_env[variable] == example[variable], f"the redis service makes {user}'s password"
        es_user = ES_USERS.get(name)
        if es_user is None:
            assert "ELASTICSEARCH_URL" not in env, f"{name} does not use Elasticsearch"
        else:
            password = es_user.replace("_USER", "_PASSWORD")
            assert env["ELASTICSEARCH_URL"] == (
                f"http://{example[es_user]}:{example[password]}@elasticsearch:9200"
            ), name
    setup = environment(services["es-setup"])
    for variable in (
        "HIVERL_ES_USER",
        "HIVERL_ES_PASSWORD",
        "HIVERL_ES_DASHBOARD_USER",
        "HIVERL_ES_DASHBOARD_PASSWORD",
    ):
        assert setup[variable] == example[variable], f"es-setup creates the user of {variable}"
    assert example["HIVERL_ES_USER"] != example["HIVERL_ES_DASHBOARD_USER"]
    # every password differs, so no role can sign in as another
    passwords = [example[f"REDIS_{user.upper()}_PASSWORD"] for user in REDIS_USERS.values()]
    assert len({*passwords, example["REDIS_PASSWORD"]}) == len(REDIS_USERS) + 1


def _es_roles() -> dict[str, dict[str, Any]]:
    """The roles docker/elasticsearch/setup.sh puts (their JSON bodies, prefix "hiverl-")."""
    setup = (REPO / "docker" / "elasticsearch" / "setup.sh").read_text()
    roles = {}
    for name, body in re.findall(
        r'_security/role/(\w+)" --data-binary @- <<JSON\n(.*?)\nJSON', setup, re.DOTALL
    ):
        roles[name] = json.loads(body.replace("${prefix}", "hiverl-"))
    return roles


def test_es_setup_gives_the_writer_and_the_reader_what_they_need() -> None:
    setup = (REPO / "docker" / "elasticsearch" / "setup.sh").read_text()
    roles = _es_roles()
    assert roles == {
        "hiverl_writer": {
            "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
            "indices": [{"names": ["hiverl-*"], "privileges": ["all"]}],
        },
        "hiverl_reader": {
            "cluster": ["monitor"],  # the dashboard's status ping reads the cluster's health
            "indices": [{"names": ["hiverl-*"], "privileges": ["read", "view_index_metadata"]}],
        },
    }
    users = re.findall(
        r'"roles": \["(\w+)"\].*?\n(?:.*\n)?\s*call -X PUT "\$es/_security/user/\$\{(\w+)\}"', setup
    )
    assert sorted(users) == [
        ("hiverl_reader", "HIVERL_ES_DASHBOARD_USER"),
        ("hiverl_writer", "HIVERL_ES_USER"),
    ]
    # what the dashboard calls on Elasticsearch: searches and the cluster's health, nothing else
    dashboard = "\n".join(
        path.read_text() for path in (REPO / "dashboard").rglob("*.py") if "kibana" not in path.parts
    )
    calls = set(re.findall(r"self\.es\.(\w+(?:\.\w+)?)\(", dashboard))
    assert calls == {"search", "close"}, calls
    assert "/_cluster/health" in (REPO / "dashboard" / "status.py").read_text()


def test_names_agree_with_the_code(services: dict[str, dict[str, Any]]) -> None:
    from hiverl.archive import ArchiveSettings
    from hiverl.telemetry.config import TelemetryConfig
    from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX

    example = env_example()
    assert example["MONGO_APP_DB"] == ArchiveSettings.model_fields["database"].default
    assert example["HIVERL_TELEMETRY_INDEX_PREFIX"] == DEFAULT_INDEX_PREFIX
    assert int(example["KAFKA_TOPIC_PARTITIONS"]) == TelemetryConfig.model_fields["topic_partitions"].default
    for name in PYTHON_SERVICES:
        env = environment(services[name])
        assert env["HIVERL_ARCHIVE_DATABASE"] == example["MONGO_APP_DB"]
        assert env["HIVERL_TELEMETRY_INDEX_PREFIX"] == DEFAULT_INDEX_PREFIX
    # the monitor watches the memory the actors write to (game.hive_memory.memory_config names it)
    session = environment(services["game"])["CONFIG_SESSION_ID"]
    command = services["monitor"]["command"]
    assert f"hive-{session}" in command
    # ... and labels its events with the hive's session id
    assert command[command.index("--session-id") + 1] == session
    assert 'name=f"hive-{config.session_id}"' in (REPO / "game" / "hive_memory.py").read_text()
    # Elasticsearch's application role covers the telemetry indices
    setup = (REPO / "docker" / "elasticsearch" / "setup.sh").read_text()
    assert (
        '"names": ["${prefix}*"]' in setup and 'prefix="${HIVERL_TELEMETRY_INDEX_PREFIX:-hiverl-}"' in setup
    )


def _function_from_source(path: Path, name: str) -> Any:
    import ast

    tree = ast.parse(path.read_text())
    [node] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def test_kibana_setup_runs_the_projects_importer(services: dict[str, dict[str, Any]]) -> None:
    import contextlib
    import io

    from dashboard.kibana import importer

    setup = services["kibana-setup"]
    assert setup["build"]["dockerfile"] == "dashboard/Dockerfile"  # the image holding dashboard/kibana/
    code = setup["command"][-1]
    assert setup["command"][:2] == ["python", "-c"] and "from dashboard.kibana.importer import main" in code
    assert "--kibana-url" in code and "KIBANA_URL" in environment(setup)
    assert "@kibana:5601" in environment(setup)["KIBANA_URL"]
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(io.StringIO()) as out:
        importer.main(["--kibana-url", "http://kibana:5601", "--help"])
    assert exit_info.value.code == 0 and "--kibana-url" in out.getvalue()


def test_logstash_gets_every_variable_its_pipeline_reads(services: dict[str, dict[str, Any]]) -> None:
    from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
    from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX

    logstash = services["logstash"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in logstash["volumes"]}
    pipeline_dir = REPO / mounts["/usr/share/logstash/pipeline"]
    assert (REPO / mounts["/usr/share/logstash/config/logstash.yml"]).is_file()
    text = "\n".join(path.read_text() for path in sorted(pipeline_dir.glob("*.conf")))
    assert text, f"no pipeline in {pipeline_dir}"
    env = environment(logstash)
    for name in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)(?::[^}]*)?\}", text)):
        assert name in env, f"the pipeline reads ${{{name}}}: set it in compose's logstash service"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert re.fullmatch(r"http://[^:@]+:[^@]+@elasticsearch:9200", env["ELASTICSEARCH_URL"])
    assert TRAINING_LOG_TOPIC in text and MEMORY_MONITORING_TOPIC in text
    # the index prefix is the variable `hiverl index` reads, with the same default
    assert f'index => "${{HIVERL_TELEMETRY_INDEX_PREFIX:{DEFAULT_INDEX_PREFIX}}}' in text
    assert env["HIVERL_TELEMETRY_INDEX_PREFIX"] == DEFAULT_INDEX_PREFIX


# -- 4. the game service scales ----------------------------------------------------------------------


def test_actors_scale_and_the_learner_holds_the_gpu(services: dict[str, dict[str, Any]]) -> None:
    game, learner = services["game"], services["learner"]
    assert "container_name" not in game and "ports" not in game and "hostname" not in game
    assert "resources" not in game.get("deploy", {})  # actors play on the CPU
    devices = learner["deploy"]["resources"]["reservations"]["devices"]
    # one GPU, chosen by its host index (one hive per GPU on a multi-GPU host)
    assert devices == [
        {"driver": "nvidia", "device_ids": [env_example()["HIVERL_LEARNER_GPU"]], "capabilities": ["gpu"]}
    ]
    env = environment(game)
    # `--scale game=N` is the one number: the hive size is the live index leases, never CONFIG_ACTORS
    for role in ("game", "learner", "evaluator"):
        assert "CONFIG_ACTORS" not in environment(services[role]), f"{role}: a second number to keep in step"
    assert game["command"] == ["python", "-m", "game.worker_index", "run", "--", "hiverl", "actor"]
    assert learner["command"] == ["hiverl", "learner"]
    # the learner's checkpoints live on a named volume at the configured model dir (resume)
    assert f"models:{env['CONFIG_MODEL_DIR']}" in learner["volumes"]
    assert f"runs:{env['CONFIG_RUN_DIR']}" in game["volumes"]


def test_dashboard_reads_the_run_folders_the_game_writes(services: dict[str, dict[str, Any]]) -> None:
    game, dashboard = environment(services["game"]), environment(services["dashboard"])
    assert dashboard["HIVERL_DASHBOARD_RUNS_DIR"] == game["CONFIG_RUN_DIR"]
    assert f"runs:{game['CONFIG_RUN_DIR']}" in services["dashboard"]["volumes"]
    # accounts persist on their own volume, under the dashboard's home ($HIVERL_HOME/dashboard)
    assert f"dashboard-data:{dashboard['HIVERL_HOME']}/dashboard" in services["dashboard"]["volumes"]


# -- 5. convergence: health checks, conditions, restarts, volumes, images ----------------------------


def test_every_service_has_a_health_check_or_is_a_one_shot(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert service["restart"] == "no", name
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        # the hive's roles exit 0 when the session is done: restarting those would loop
        expected = "on-failure" if name in ("game", "learner", "evaluator") else "unless-stopped"
        assert service.get("restart") == expected, f"{name} needs restart: {expected}"


def test_depends_on_waits_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOTS else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {target}"
            if expected == "service_healthy":
                assert services[target]["healthcheck"]["test"], f"{target} has no health check"


def test_one_shots_run_after_their_server_and_are_waited_for(services: dict[str, dict[str, Any]]) -> None:
    assert services["es-setup"]["depends_on"] == {"elasticsearch": {"condition": "service_healthy"}}
    assert services["kibana"]["depends_on"]["es-setup"]["condition"] == "service_completed_successfully"
    assert services["kibana-setup"]["depends_on"] == {"kibana": {"condition": "service_healthy"}}
    assert services["telemetry-setup"]["command"] == ["hiverl", "index", "--setup-only"]
    assert services["telemetry-setup"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_exactly_one_indexer_runs(services: dict[str, dict[str, Any]]) -> None:
    """`hiverl index` and Logstash are alternatives (profiles); .env.example picks one."""
    assert services["indexer"]["profiles"] == ["indexer"]
    assert services["logstash"]["profiles"] == ["logstash"]
    profiles = env_example()["COMPOSE_PROFILES"].split(",")
    assert len({"indexer", "logstash"} & set(profiles)) == 1 and "kibana" in profiles
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == {"indexer", "logstash", "kibana", "kibana-setup"}
    assert services["kibana"]["profiles"] == services["kibana-setup"]["profiles"] == ["kibana"]
    for name in ("indexer", "logstash"):
        # templates and topics exist before the first document is indexed
        assert services[name]["depends_on"] == {
            "telemetry-setup": {"condition": "service_completed_successfully"}
        }


def test_data_lives_on_named_volumes(stack: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(stack["volumes"])
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, _target, *mode = volume.split(":")
            if source.startswith("./"):
                assert mode == ["ro"], f"{name}: bind mounts are read-only configuration ({volume})"
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image, tag = _image(service)
        assert image and tag and tag != "latest", f"{name}: {service['image']} is not pinned"
        if "build" in service:
            built = (REPO / service["build"]["dockerfile"]).parent.name  # the Dockerfile beside its service
            assert image == f"hiverl-{built}" and tag == env_example()["HIVERL_IMAGE_TAG"]
        else:
            assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9]+)?", tag), f"{name}: exact version tag, got {tag}"


# -- 6. environment variables ------------------------------------------------------------------------


def load_gen_config_docs() -> Any:
    """scripts/gen_config_docs.py as a module (it finds the settings models and env variables)."""
    import importlib.util
    import sys

    if "gen_config_docs" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "gen_config_docs", REPO / "scripts" / "gen_config_docs.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["gen_config_docs"] = module
        spec.loader.exec_module(module)
    return sys.modules["gen_config_docs"]


def _code_variables() -> set[str]:
    module = load_gen_config_docs()
    names = set(module.other_variables()) | set(module.secret_file_variables())
    for model in module.settings_classes():
        config = model.model_config
        for setting in module.model_settings(
            model, str(config.get("env_prefix") or ""), config.get("env_nested_delimiter")
        ):
            names.update(setting.env.split(" / "))
    return names


def test_hiverl_services_get_only_variables_the_code_reads(services: dict[str, dict[str, Any]]) -> None:
    known = _code_variables()
    for name in PYTHON_SERVICES:
        service = services[name]
        command = " ".join(service["command"])
        for variable in environment(service):
            assert variable in known or f"${variable}" in command, f"{name}: nothing reads {variable}"
        required = {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "HIVERL_HOME"}
        required |= {"REDIS_URL"} if name in REDIS_USERS else set()
        required |= {"ELASTICSEARCH_URL"} if name in ES_USERS else set()
        for variable in sorted(required):
            assert variable in environment(service), f"{name} needs {variable}"
    game = environment(services["game"])
    assert {"CONFIG_SESSION_ID", "CONFIG_MODEL_DIR", "CONFIG_RUN_DIR"} <= set(game)


def test_env_example_lists_every_variable_with_the_same_default() -> None:
    files = ("compose.yaml", "compose.cpu.yaml", "compose.shards.yaml")
    text = "\n".join((REPO / name).read_text() for name in files)
    example = env_example()
    used: dict[str, set[tuple[str, str]]] = {}
    for match in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", text):
        used.setdefault(match[1], set()).add((match[2], match[3]))
    compose_own = {name for name in example if name.startswith("COMPOSE_")}  # read by compose itself
    assert set(used) == set(example) - compose_own, "compose variables and .env.example differ"
    for name, forms in used.items():
        for operator, argument in forms:
            if operator == ":-":
                assert argument == example[name], f"{name}: compose default {argument!r} != .env.example"
        if "change-me" in example[name]:
            assert all(op == ":?" for op, _ in forms), f"{name} is a secret: compose must require it"


# -- 7. what the containers run exists -----------------------------------------------------------------


def _resolve(words: list[str]) -> str | None:
    """None when `hiverl <words>` names an existing command and options, else what is missing."""
    import typer

    from hiverl.cli import app

    command: Any = typer.main.get_command(app)
    position = 0
    while hasattr(command, "commands") and position < len(words) and not words[position].startswith("-"):
        if words[position] not in command.commands:
            return f"no command {' '.join(words[: position + 1])!r}"
        command = command.commands[words[position]]
        position += 1
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    missing = [
        w.split("=")[0] for w in words[position:] if w.startswith("--") and w.split("=")[0] not in options
    ]
    return f"no option {missing} of {' '.join(words[:position])!r}" if missing else None


def _hiverl_calls(command: list[str]) -> list[list[str]]:
    """Every `hiverl ...` call in a service command (exec form, `run -- hiverl ...` or `sh -c`)."""
    import shlex

    text = command[-1] if command[:2] == ["sh", "-c"] else shlex.join(command)
    calls = []
    for part in re.split(r"\|\||&&|\||;", text):
        words = shlex.split(part)
        if "hiverl" in words:
            calls.append(words[words.index("hiverl") + 1 :])
    return calls


def test_the_commands_the_containers_run_exist(services: dict[str, dict[str, Any]]) -> None:
    problems = []
    for name in PYTHON_SERVICES:
        calls = _hiverl_calls(services[name]["command"])
        assert calls, f"{name} runs no hiverl command"
        problems += [f"{name}: {problem}" for call in calls if (problem := _resolve(call))]
    assert problems == []


def test_the_dashboard_command_is_resolved() -> None:
    """The resolver above is real: it accepts existing commands and names what is missing."""
    assert _resolve(["dashboard", "--host", "0.0.0.0", "--port", "8050"]) is None
    assert _resolve(["users", "add", "admin", "--role", "admin"]) is None
    assert _resolve(["users", "frobnicate"]) == "no command 'users frobnicate'"
    assert _resolve(["dashboard", "--colour"]) == "no option ['--colour'] of 'dashboard'"


# -- 8. the Redis container's start script, on a real redis-server ------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_script_env(tmp_path: Path, port: int, password: str) -> dict[str, str]:
    import os

    return {
        "PATH": os.environ["PATH"],
        "REDIS_USER": "hiverl",
        "REDIS_PASSWORD": password,
        **{f"REDIS_{user.upper()}_PASSWORD": f"{user}-pass" for user in REDIS_USERS.values()},
        "REDIS_CONF": str(CATALOG.redis.config_file),
        "REDIS_DATA": str(tmp_path),
        "REDIS_PORT": str(port),
        "REDIS_BIND": "127.0.0.1",
        "REDIS_ACL_FILE": str(tmp_path / "users.acl"),
    }


def test_redis_start_script_locks_redis_down_but_serves_the_memory(
    tmp_path: Path, services: dict[str, dict[str, Any]]
) -> None:
    import stat
    import subprocess
    import time

    import numpy as np
    import redis

    from replay_memory import MemoryConfig, ReplayMemory, TransitionBatch

    port, password = _free_port(), "s3cret-pass_1"
    script = [str(REPO / "docker" / "redis" / "start.sh")]
    process = subprocess.Popen(["sh", *script], env=_start_script_env(tmp_path, port, password))
    user = redis.Redis(port=port, username="hiverl", password=password)
    try:
        for _ in range(200):
            try:
                user.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        # nobody else gets in
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, username="hiverl", password="wrong-password").ping()
        # the project's redis.conf is loaded: AOF on
        assert user.info("persistence")["aof_enabled"] == 1
        # no administration, no wiping everything
        for forbidden in (lambda: user.config_get("*"), user.flushall, user.flushdb, user.shutdown):
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
        assert user.bgsave()  # Redis-level backups stay possible
        # compose's health check passes with the container's environment (here on our port)
        kind, check = services["redis"]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        check_env = {**_start_script_env(tmp_path, port, password)}
        probe = subprocess.run(
            ["sh", "-c", check.replace("redis-cli", f"redis-cli -p {port}")], env=check_env
        )
        assert probe.returncode == 0
        wrong = subprocess.run(
            ["sh", "-c", check.replace("redis-cli", f"redis-cli -p {port}")],
            env={**check_env, "REDIS_PASSWORD": "wrong-password"},
            capture_output=True,
        )
        assert wrong.returncode != 0
        # the replay memory works as this user: create, insert, sample
        memory = ReplayMemory.open(
            f"redis://hiverl:{password}@127.0.0.1:{port}/0", MemoryConfig(name="acl-check", capacity=64)
        )
        ids = np.arange(16)
        obs = np.zeros((16, 4), np.float32)
        batch = TransitionBatch(
            obs=obs,
            actions=ids % 2,
            rewards=ids.astype(np.float32),
            next_obs=obs + 1,
            discounts=np.full(16, 0.99, np.float32),
            terminated=np.zeros(16, bool),
            truncated=np.zeros(16, bool),
            n_steps=np.ones(16, np.int32),
            episode_ids=np.zeros(16, np.int64),
            step_indices=ids,
            worker_id="acl",
            priorities=None,
        )
        assert memory.insert(batch) == 16
        assert len(memory.sample(8, beta=0.4).rewards) == 8
        memory.close()
        # the password never lands on the data volume or a command line
        assert stat.S_IMODE((tmp_path / "users.acl").stat().st_mode) == 0o600
        assert password not in " ".join(process.args if isinstance(process.args, list) else [])
    finally:
        process.terminate()
        process.wait(10)


def test_redis_start_script_rejects_a_password_that_breaks_urls(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        ["sh", str(REPO / "docker" / "redis" / "start.sh")],
        env=_start_script_env(tmp_path, _free_port(), "pass@word:1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "REDIS_PASSWORD may only contain" in result.stderr


def test_env_example_holds_no_real_secret() -> None:
    for name, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|ENCRYPTION_KEY|TOKEN", name):
            assert value.startswith("change-me"), f"{name} in .env.example must be a change-me placeholder"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KIBANA_SYSTEM_PASSWORD", "short1", "KIBANA_SYSTEM_PASSWORD must be at least 8 characters"),
        ("HIVERL_ES_PASSWORD", "has space 123", "HIVERL_ES_PASSWORD must be set and contain only"),
        ("ELASTIC_PASSWORD", "", "ELASTIC_PASSWORD must be set"),
        ("HIVERL_ES_DASHBOARD_PASSWORD", "", "HIVERL_ES_DASHBOARD_PASSWORD must be set"),
        ("HIVERL_ES_DASHBOARD_USER", "bad user", "HIVERL_ES_DASHBOARD_USER must be set and contain only"),
        ("HIVERL_ES_DASHBOARD_USER", "hiverl", "HIVERL_ES_DASHBOARD_USER must differ from HIVERL_ES_USER"),
    ],
)
def test_es_setup_rejects_bad_passwords_before_touching_elasticsearch(
    variable: str, value: str, message: str
) -> None:
    import os
    import subprocess

    env = {
        "PATH": os.environ["PATH"],
        "ELASTIC_PASSWORD": "elastic-pass",
        "KIBANA_SYSTEM_PASSWORD": "kibana-pass",
        "HIVERL_ES_USER": "hiverl",
        "HIVERL_ES_PASSWORD": "hiverl-pass",
        "HIVERL_ES_DASHBOARD_USER": "hiverl-dashboard",
        "HIVERL_ES_DASHBOARD_PASSWORD": "dashboard-pass",
        variable: value,
    }
    result = subprocess.run(
        ["bash", str(REPO / "docker" / "elasticsearch" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and message in result.stderr


# -- 9. the memory over four Redis servers: compose.shards.yaml -------------------------------------

SHARD_SERVERS = ("redis", "redis-shard-1", "redis-shard-2", "redis-shard-3")
SHARDED_ROLES = ("learner", "evaluator", "game")  # the roles that open the memory with its settings


@pytest.fixture(scope="module")
def sharded(raw: dict[str, Any]) -> dict[str, Any]:
    """compose.yaml with compose.shards.yaml, interpolated with .env.example."""
    return dict(interpolate(merge(raw, load("compose.shards.yaml")), env_example()))


def test_shards_overlay_follows_the_specification_and_keeps_the_invariants(
    raw: dict[str, Any], sharded: dict[str, Any]
) -> None:
    assert _errors(sharded) == []
    with_cpu = interpolate(
        merge(merge(raw, load("compose.cpu.yaml")), load("compose.shards.yaml")), env_example()
    )
    assert _errors(with_cpu) == []
    services = dict(sharded["services"])
    # what holds for the plain stack holds with the overlay: health checks and restart policies,
    # depends_on conditions, named volumes, pinned images, variables the code reads
    test_every_service_has_a_health_check_or_is_a_one_shot(services)
    test_depends_on_waits_for_health_or_completion(services)
    test_data_lives_on_named_volumes(sharded, services)
    test_every_image_is_pinned(services)
    test_hiverl_services_get_only_variables_the_code_reads(services)
    test_the_commands_the_containers_run_exist(services)


def test_plain_compose_keeps_one_redis_server(services: dict[str, dict[str, Any]]) -> None:
    assert not [name for name in services if name.startswith("redis-shard")]
    for name in PYTHON_SERVICES:
        assert "," not in environment(services[name]).get("REDIS_URL", "")
        assert "CONFIG_MEMORY__SHARDS" not in environment(services[name])


def test_shard_servers_are_copies_of_the_redis_service(
    sharded: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    for name in SHARD_SERVERS[1:]:
        shard = sharded["services"][name]
        for key in ("image", "user", "command", "environment", "healthcheck", "restart"):
            assert shard[key] == redis[key], f"{name}: {key} differs from the redis service"
        assert "ports" not in shard and "profiles" not in shard, f"{name}: on by the overlay, inside only"
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in shard["volumes"]}
        base = {volume.split(":")[1]: volume.split(":")[0] for volume in redis["volumes"]}
        assert mounts == {**base, "/data": f"{name}-data"}  # the same config, its own data volume
    assert set(sharded["volumes"]) - set(load("compose.yaml")["volumes"]) == {
        f"{name}-data" for name in SHARD_SERVERS[1:]
    }


def test_every_hiverl_service_sees_the_four_servers(sharded: dict[str, Any]) -> None:
    from hiverl.config_sections import MemorySettings

    services = sharded["services"]
    example = env_example()
    for name in PYTHON_SERVICES:
        env = environment(services[name])
        user = REDIS_USERS.get(name)
        if user is None:
            assert "REDIS_URL" not in env, name
            continue
        password = example[f"REDIS_{user.upper()}_PASSWORD"]
        urls = [f"redis://{user}:{password}@{server}:6379/0" for server in SHARD_SERVERS]
        # the first server first: the board, the actor leases and the stop flag live there
        assert env["REDIS_URL"].split(",") == urls, name
    for name in SHARDED_ROLES:
        shards = int(environment(services[name])["CONFIG_MEMORY__SHARDS"])
        assert shards % len(SHARD_SERVERS) == 0, f"{name}: every server holds as many shards"
        assert MemorySettings.model_fields["capacity"].default % shards == 0
    for name in ("learner", "monitor", "dashboard"):
        for server in SHARD_SERVERS:
            assert services[name]["depends_on"][server] == {"condition": "service_healthy"}, name
    for name in ("learner", "evaluator", "monitor"):
        code = services[name]["healthcheck"]["test"][-1]
        assert "for u in Endpoints().redis_url.split(',')" in code and ".ping()" in code, name


def test_the_all_servers_check_fails_when_one_server_is_down(sharded: dict[str, Any], tmp_path: Path) -> None:
    """The overlay's health check of the learner, run against two real servers, then one stopped."""
    import os
    import subprocess
    import sys

    from hiverl.services import RedisServer, free_ports

    kind, *command = sharded["services"]["learner"]["healthcheck"]["test"]
    assert kind == "CMD" and command[0] == "python"
    servers = [RedisServer(port, tmp_path / f"r{port}", persistent=False) for port in free_ports(2)]
    try:
        for server in servers:
            server.start()
        env = {**os.environ, "REDIS_URL": ",".join(server.url for server in servers)}

        def check() -> int:
            return subprocess.run(
                [sys.executable, *command[1:]], env=env, capture_output=True, timeout=60
            ).returncode

        assert check() == 0
        servers[1].stop()
        assert check() != 0
    finally:
        for server in servers:
            server.stop()
