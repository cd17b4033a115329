"""deploy/production/ checked by what can check it here.

* compose.yaml validates against the Compose Specification's JSON schema (vendored from the
  compose-go module, deploy/production/schema/SOURCE.md; pinned by its sha256);
* every variable compose.yaml and the systemd units set for the pipeline's own services is
  one ``pulse.config.Settings`` reads (a typo fails), and with the secret files in place each
  service's environment gives valid Settings (``Settings.from_env`` runs its checks);
  Superset's: Settings' or those ``deploy/superset/superset_config.py`` reads;
* every secret a service mounts is declared, every env file has its ``.example``;
* the systemd units pass ``systemd-analyze verify`` and carry the restart policy, the
  settings file and the hardening options;
* the alerting rules pass ``promtool check rules`` and their unit tests (``promtool test
  rules``: each alert fires and stays quiet), the scrape config ``promtool check config``.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from pulse.config import REPO_ROOT, Settings

PROD = REPO_ROOT / "deploy" / "production"
SCHEMA = PROD / "schema" / "compose-spec.json"
SCHEMA_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"   # compose-go v2.16.2
SYSTEMD = PROD / "systemd"
INSTALL_ROOT = "/opt/motcua-pulse"
SETTINGS_VARS = frozenset(f.metadata["env"] for f in fields(Settings) if "env" in f.metadata)
# what Superset's own process reads: superset_config.py's variables, and Superset's/Flask's
SUPERSET_OWN = frozenset(re.findall(r'os\.environ\.get\(\s*"([A-Z0-9_]+)"',
                                    (REPO_ROOT / "deploy/superset/superset_config.py").read_text())) | {
    "SUPERSET_CONFIG_PATH", "FLASK_APP", "SUPERSET_LOAD_EXAMPLES", "PYTHONPATH", "TZ"}


def compose() -> dict:
    return yaml.safe_load((PROD / "compose.yaml").read_text())


def pulse_services(doc: dict) -> dict:
    """The services running the pipeline's image (workers, API, migrations, topics)."""
    return {name: s for name, s in doc["services"].items() if (s.get("build") or {}).get("target") == "pulse"}


def env_file_vars(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped)."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert "=" in line, f"{path}:{n}: not NAME=value: {line!r}"
        name, value = line.split("=", 1)
        out[name.strip()] = value
    return out


def service_env(doc_dir: Path, service: dict) -> dict[str, str]:
    """A compose service's environment: its env files' examples, then ``environment``."""
    env: dict[str, str] = {}
    for f in service.get("env_file") or []:
        path = f if isinstance(f, str) else f["path"]
        example = doc_dir / (path + ".example")
        assert example.exists(), f"env file {path} has no {example.name} in the repository"
        env.update(env_file_vars(example))
    given = service.get("environment") or {}
    if isinstance(given, list):
        given = dict(x.split("=", 1) for x in given)
    env.update({k: str(v) for k, v in given.items()})
    return env


def unknown(names, allowed) -> list[str]:
    return sorted(set(names) - set(allowed))


# ----------------------------------------------------------------------------- compose

def test_vendored_compose_schema_is_the_pinned_one():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256, \
        "compose-spec.json changed: update SOURCE.md and SCHEMA_SHA256 deliberately"


def test_compose_file_validates_against_the_compose_specification():
    import jsonschema  # type: ignore[import-untyped]  # no stubs installed
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    doc = compose()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    # the validator does reject what is not Compose (a misspelt key, a wrong type)
    misspelt = json.loads(json.dumps(doc))
    misspelt["services"]["api"]["restrat"] = "always"
    assert any("restrat" in e.message for e in validator.iter_errors(misspelt))
    wrong_type = json.loads(json.dumps(doc))
    wrong_type["services"]["worker-1"]["ports"] = 8000
    assert any("not of type" in e.message for e in validator.iter_errors(wrong_type))


def test_compose_has_the_province_stack():
    services = compose()["services"]
    kafka = [s for n, s in services.items() if n.startswith("kafka-") and n[6:].isdigit()]
    assert len(kafka) == 3
    for s in kafka:
        env = s["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"                 # KRaft
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert "CLIENT:SASL_SSL" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert {f"worker-{i}" for i in (1, 2)} <= set(pulse_services(compose()))
    for name in ("api", "clickhouse", "keeper", "superset", "superset-db", "superset-redis", "prometheus"):
        assert name in services, name
    pulse_env = env_file_vars(PROD / "env/pulse.env.example")
    assert pulse_env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and pulse_env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert pulse_env["KAFKA_REPLICATION_FACTOR"] == "3" and pulse_env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    volumes = [v.split(":")[0] for v in services["prometheus"]["volumes"]]
    assert "./prometheus" in volumes


def test_compose_sets_only_variables_that_settings_reads():
    doc = compose()
    services = pulse_services(doc)
    assert len(services) >= 5
    for name, s in services.items():
        env = service_env(PROD, s)
        assert env, name
        assert unknown(env, SETTINGS_VARS) == [], f"service {name}"
    env = service_env(PROD, doc["services"]["superset"])
    assert unknown(env, SETTINGS_VARS | SUPERSET_OWN) == [], "service superset"
    # the check catches a typo
    doctored = json.loads(json.dumps(doc))
    doctored["services"]["worker-2"]["environment"]["KAFKA_BOOTSTRAPP"] = "x:9094"
    assert unknown(service_env(PROD, pulse_services(doctored)["worker-2"]), SETTINGS_VARS) == ["KAFKA_BOOTSTRAPP"]


def _with_files(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment with each file it names (secrets, CA) replaced by a real file."""
    out = dict(env)
    for name in ("KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
        if out.get(name):
            assert out[name].startswith("/"), f"{name}={out[name]!r}: an absolute path"
            f = tmp_path / name.lower()
            f.write_text("secret\n")
            out[name] = str(f)
    return out


def test_each_compose_service_environment_gives_valid_settings(tmp_path):
    doc = compose()
    declared = set(doc.get("secrets") or {})
    for name, s in pulse_services(doc).items():
        mounted = {}
        for sec in s.get("secrets") or []:
            src = sec if isinstance(sec, str) else sec["source"]
            assert src in declared, f"service {name}: secret {src} not declared"
            mounted[src] = f"/run/secrets/{src}" if isinstance(sec, str) else sec.get("target", f"/run/secrets/{src}")
        env = service_env(PROD, s)
        for var in ("KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE"):
            if env.get(var):
                assert env[var] in mounted.values(), f"service {name}: {var}={env[var]} is not a mounted secret"
        settings = Settings.from_env(_with_files(env, tmp_path))
        assert settings.kafka_security_protocol == "SASL_SSL", name
    for name, s in doc["services"].items():
        for sec in s.get("secrets") or []:
            assert (sec if isinstance(sec, str) else sec["source"]) in declared, f"service {name}"


# ----------------------------------------------------------------------------- systemd

def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, repeated keys kept, in order."""
    out, section = [], ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1)
        out.append((section, key.strip(), value.strip()))
    return out


def units() -> list[Path]:
    found = sorted(SYSTEMD.glob("*.service"))
    assert found
    return found


def unit_env(path: Path, instance: str = "1") -> dict[str, str]:
    env: dict[str, str] = {}
    for section, key, value in unit_entries(path):
        if section != "Service":
            continue
        if key == "EnvironmentFile":
            target = value.lstrip("-")
            assert target == "/etc/motcua-pulse/pulse.env", f"{path.name}: {value}"
            env.update(env_file_vars(PROD / "env" / "pulse.env.example"))
        elif key == "Environment":
            name, v = value.split("=", 1)
            env[name] = v.replace("%i", instance).replace("%d", "/run/credentials/x")
    return env


def test_systemd_units_set_only_variables_that_settings_reads(tmp_path):
    for path in units():
        env = unit_env(path)
        assert unknown(env, SETTINGS_VARS) == [], path.name
        Settings.from_env(_with_files(env, tmp_path))     # valid Settings, files in place
    assert unit_env(SYSTEMD / "motcua-pulse-worker@.service", "2")["FAUST_WEB_PORT"] == "6062"


def test_systemd_units_restart_and_hardening():
    worker = SYSTEMD / "motcua-pulse-worker@.service"
    assert worker.exists(), "the worker is a template unit"
    for path in units():
        service = {k: v for s, k, v in unit_entries(path) if s == "Service"}
        assert service.get("Restart") in ("always", "on-failure"), path.name
        assert service.get("User") == "motcua" and service.get("EnvironmentFile"), path.name
        assert service["ExecStart"].startswith(f"{INSTALL_ROOT}/.venv/bin/"), path.name
        for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                          ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "")):
            assert service.get(key) == want, (path.name, key)
    assert dict((k, v) for s, k, v in unit_entries(worker) if s == "Service")["Restart"] == "always"


def _verify(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                          timeout=120)


def test_systemd_analyze_verify(tmp_path):
    """Each unit as installed, with the install root pointing at this checkout (verify needs
    the ExecStart programs to exist); the template as instance 1. Any warning fails."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (Debian package systemd); the unit files "
                    "are still checked by test_systemd_units_*")
    probe = tmp_path / "probe.service"
    probe.write_text("[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n")
    res = _verify([probe])
    if res.returncode != 0 or res.stderr.strip():
        pytest.skip(f"systemd-analyze verify cannot run in this container (a trivial unit fails: "
                    f"{(res.stderr or res.stdout).strip()[:300]}); the unit files are still checked by "
                    "test_systemd_units_*")
    out = []
    for path in units():
        text = path.read_text().replace(INSTALL_ROOT, str(REPO_ROOT))
        name = path.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
        out.append(tmp_path / name)
    res = _verify(out)
    assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), res.stderr + res.stdout
    # and it does complain about a broken unit
    bad = tmp_path / "bad.service"
    bad.write_text(out[0].read_text().replace("[Service]", "[Service]\nRestartt=always", 1))
    assert "Restartt" in _verify([bad]).stderr


# ----------------------------------------------------------------------------- Prometheus

def _promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus: make install-system)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                          cwd=PROD / "prometheus")


def test_alerting_rules_check_and_unit_tests():
    res = _promtool("check", "rules", "alerts.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    rules = yaml.safe_load((PROD / "prometheus/alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"MotcuaPulseConsumerLagHigh", "MotcuaPulseFreshnessLate", "MotcuaPulseDeadLetterRateHigh",
            "MotcuaPulseWorkerDown", "MotcuaPulseNoWorkerUp", "MotcuaPulseWorkerSilent"} <= names
    # every alert has a unit test that shows it firing and one where it stays quiet
    tests = yaml.safe_load((PROD / "prometheus/alerts_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c.get("exp_alerts")} == names
    assert {c["alertname"] for c in cases if not c.get("exp_alerts")} == names
    res = _promtool("test", "rules", "alerts_test.yml")
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_scrape_config_checks(tmp_path):
    res = _promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    cfg = yaml.safe_load((PROD / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    # the job names the alerting rules select on
    assert {"motcua-pulse-worker", "motcua-pulse-api"} <= set(jobs)
    workers = [t for sc in jobs["motcua-pulse-worker"]["static_configs"] for t in sc["targets"]]
    services = compose()["services"]
    for target in workers:
        host, port = target.split(":")
        assert host in services and services[host]["environment"]["FAUST_WEB_PORT"] == port, target
