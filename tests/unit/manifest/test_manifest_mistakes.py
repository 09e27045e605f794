"""Each kind of mistake in a manifest gives one clear error naming file, line and path."""

# The table of mistakes reads best one case a line, message in full.
# ruff: noqa: E501

from __future__ import annotations

import textwrap

import pytest

from dirigent.manifest import InvalidManifest, parse_manifest

WEB = "app: shop\nservices:\n  web:\n    command: ./web\n"

MISTAKES = [
    ("yaml syntax", "app: [shop\n", "dirigent.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("empty document", "", "dirigent.yaml:1: empty manifest; expected at least 'app'"),
    ("root not a mapping", "- app\n", "dirigent.yaml:1: expected a mapping"),
    ("missing app", "services: {}\n", "dirigent.yaml:1: app: required key is missing"),
    ("app not a DNS label", "app: My Shop\n", "dirigent.yaml:1: app: expected a lowercase name of letters, digits and '-' (a DNS label)"),
    ("unknown top-level key", "app: shop\nservice: {}\n", "dirigent.yaml:2: service: unknown key (did you mean 'services'?); expected one of: app, functions, services, workflows"),
    ("duplicate key", "app: shop\napp: other\n", "dirigent.yaml:2: app: duplicate key (first given on line 1)"),
    ("missing command", "app: shop\nservices:\n  web:\n    replicas: 2\n", "dirigent.yaml:3: services.web.command: required key is missing"),
    ("unbalanced quote in command", "app: shop\nservices:\n  web:\n    command: 'python \"x'\n", "dirigent.yaml:4: services.web.command: cannot split the command: No closing quotation"),
    ("empty command list", "app: shop\nservices:\n  web:\n    command: []\n", "dirigent.yaml:4: services.web.command: expected a non-empty command"),
    ("negative replicas", WEB + "    replicas: -1\n", "dirigent.yaml:5: services.web.replicas: expected an integer >= 0"),
    ("port out of range", WEB + "    port: 70000\n", "dirigent.yaml:5: services.web.port: expected a port (1-65535) or 'auto'"),
    ("typo in a service key", WEB + "    replica: 2\n", "dirigent.yaml:5: services.web.replica: unknown key (did you mean 'replicas'?); expected one of: autoscale, command, cwd, depends_on, env, env_file, port, probes, replicas, resources, restart, rollout, stop"),
    ("zero probe period", WEB + "    probes:\n      liveness:\n        http: /health\n        period: 0\n", "dirigent.yaml:8: services.web.probes.liveness.period: expected a number > 0"),
    ("probe with two kinds", WEB + "    probes:\n      readiness: {http: /ready, tcp: true}\n", "dirigent.yaml:6: services.web.probes.readiness: expected exactly one of: http, tcp, exec"),
    ("http probe path without slash", WEB + "    probes:\n      readiness: {http: ready}\n", "dirigent.yaml:6: services.web.probes.readiness.http: expected a path starting with '/'"),
    ("unknown probe role", WEB + "    probes:\n      health: {http: /}\n", "dirigent.yaml:6: services.web.probes.health: unknown key; expected one of: liveness, readiness, startup"),
    ("liveness success threshold above 1", WEB + "    probes:\n      liveness: {tcp: true, success_threshold: 2}\n", "dirigent.yaml:6: services.web.probes.liveness.success_threshold: must be 1 for a liveness probe"),
    ("unknown restart policy", WEB + "    restart: sometimes\n", "dirigent.yaml:5: services.web.restart: expected one of: always, on-failure, never"),
    ("backoff cap below initial", WEB + "    restart:\n      backoff: {initial: 5, cap: 1}\n", "dirigent.yaml:6: services.web.restart.backoff.cap: must be >= initial (5)"),
    ("jitter above one", WEB + "    restart:\n      backoff:\n        jitter: 1.5\n", "dirigent.yaml:7: services.web.restart.backoff.jitter: expected a fraction between 0 and 1"),
    ("unknown stop signal", WEB + "    stop: {signal: SIGFOO}\n", "dirigent.yaml:5: services.web.stop.signal: expected one of: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL"),
    ("bad memory size", WEB + "    resources: {memory: lots}\n", "dirigent.yaml:5: services.web.resources.memory: expected a size such as 512Mi, 1G or a number of bytes"),
    ("autoscale max below min", WEB + "    autoscale:\n      min: 3\n      max: 2\n      metrics: {cpu: 70}\n", "dirigent.yaml:7: services.web.autoscale.max: must be >= min (3)"),
    ("unknown autoscale metric", WEB + "    autoscale:\n      min: 1\n      max: 2\n      metrics: {memory: 70}\n", "dirigent.yaml:8: services.web.autoscale.metrics.memory: unknown key; expected one of: cpu, inflight, p95_latency, rps"),
    ("autoscale without metrics", WEB + "    autoscale: {min: 1, max: 2}\n", "dirigent.yaml:5: services.web.autoscale.metrics: required key is missing"),
    ("unknown scaling policy type", WEB + "    autoscale:\n      min: 1\n      max: 2\n      metrics: {rps: 100}\n      behavior:\n        scale_up:\n          policies: [{type: replicas, value: 2, period: 15}]\n", "dirigent.yaml:11: services.web.autoscale.behavior.scale_up.policies[0].type: expected one of: pods, percent"),
    ("replicas outside autoscale bounds", WEB + "    replicas: 9\n    autoscale: {min: 1, max: 3, metrics: {cpu: 50}}\n", "dirigent.yaml:5: services.web.replicas: expected a count between autoscale.min (1) and autoscale.max (3)"),
    ("unknown dependency", WEB + "    depends_on: [db]\n", "dirigent.yaml:5: services.web.depends_on: unknown service 'db'"),
    ("dependency cycle", "app: a\nservices:\n  x:\n    command: x\n    depends_on: [y]\n  y:\n    command: y\n    depends_on: [x]\n", "dirigent.yaml:5: services.x.depends_on: dependency cycle: x -> y -> x"),
    ("rollout that can never progress", WEB + "    rollout: {max_surge: 0, max_unavailable: 0}\n", "dirigent.yaml:5: services.web.rollout: max_surge and max_unavailable cannot both be 0"),
    ("bad rollout percentage", WEB + "    rollout: {max_surge: 150%}\n", "dirigent.yaml:5: services.web.rollout.max_surge: expected an integer >= 0 or a percentage like '25%'"),
    ("overlapping fixed ports", "app: a\nservices:\n  x:\n    command: x\n    port: 8000\n    replicas: 3\n  y:\n    command: y\n    port: 8002\n", "dirigent.yaml:9: services.y.port: ports 8002-8002 overlap service 'x' (8000-8002)"),
    ("invalid env name", WEB + "    env: {1BAD: x}\n", "dirigent.yaml:5: services.web.env.1BAD: invalid environment variable name"),
    ("env value is a mapping", WEB + "    env:\n      A: {b: c}\n", "dirigent.yaml:6: services.web.env.A: expected a string, number or boolean"),
    ("workflows not a list", "app: a\nworkflows: flows/a.json\n", "dirigent.yaml:2: workflows: expected a list"),
    ("function without module", "app: a\nfunctions:\n  charge: charge\n", "dirigent.yaml:3: functions.charge: expected 'module:function', e.g. 'shop.tasks:charge'"),
    ("service name with capitals", "app: a\nservices:\n  Web:\n    command: w\n", "dirigent.yaml:3: services.Web: expected a lowercase name of letters, digits and '-' (a DNS label)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=kind) for kind, text, expected in MISTAKES],
)
def test_each_mistake_gives_one_located_error(text: str, expected: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(text)
    assert [str(problem) for problem in caught.value.problems] == [expected]
    assert str(caught.value) == expected


def test_every_mistake_is_reported_at_once_in_file_order() -> None:
    text = textwrap.dedent(
        """\
        app: shop
        services:
          web:
            command: ./web
            replicas: many
            probes:
              liveness: {http: /live, period: -1}
          db:
            port: 0
        """
    )
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(text)
    assert [(p.line, p.path) for p in caught.value.problems] == [
        (5, "services.web.replicas"),
        (7, "services.web.probes.liveness.period"),
        (8, "services.db.command"),
        (9, "services.db.port"),
    ]


def test_one_bad_field_loads_nothing() -> None:
    with pytest.raises(InvalidManifest):
        parse_manifest(WEB + "  api:\n    command: ./api\n    stop: {grace_period: soon}\n")


def test_the_error_is_a_manifest_error_of_the_dirigent_hierarchy() -> None:
    from dirigent.errors import DirigentError, ManifestError

    with pytest.raises(ManifestError) as caught:
        parse_manifest("app: 3\n")
    assert isinstance(caught.value, DirigentError)
