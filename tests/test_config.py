"""Settings: one object, read from the environment, typed; a wrong value fails naming its variable."""
from __future__ import annotations

from pathlib import Path

import pytest

from pulse.config import Settings, SettingsError, WorkerTunables


def test_values_are_converted_by_their_type_and_defaults_kept():
    s = Settings.from_env({"STREAM_BATCH_SIZE": "500", "KAFKA_SESSION_TIMEOUT_S": "2.5", "PULSE_STATE_DIR": "/x",
                           "PULSE_TRACE_OFFSETS": "1", "PULSE_TUNABLES": '{"pipeline_depth": 4, "gx_enabled": false}'})
    assert s.stream_batch_size == 500 and s.kafka_session_timeout_s == 2.5 and s.state_dir == Path("/x")
    assert s.trace_offsets is True
    assert s.tunables.pipeline_depth == 4 and s.tunables.gx_enabled is False
    assert s.tunables.sink_busy_interval_s == WorkerTunables().sink_busy_interval_s     # untouched default
    assert s.faust_app_id == Settings().faust_app_id


@pytest.mark.parametrize("env,message", [
    ({"PULSE_TUNABLES": '{"pipline_depth": 8}'}, "unknown tunable.*pipline_depth"),
    ({"PULSE_TUNABLES": '{"pipeline_depth": "many"}'}, "pipeline_depth must be a number"),
    ({"PULSE_TUNABLES": '{"pipeline_depth": 2.5}'}, "pipeline_depth must be a whole number"),
    ({"PULSE_TUNABLES": '{"gx_enabled": 1}'}, "gx_enabled must be true or false"),
    ({"PULSE_TUNABLES": "[1, 2]"}, "expected a JSON object"),
    ({"PULSE_TUNABLES": "{oops"}, "PULSE_TUNABLES: not JSON"),
    ({"STREAM_BATCH_SIZE": "lots"}, "STREAM_BATCH_SIZE='lots'"),
    ({"PULSE_TRACE_OFFSETS": "maybe"}, "PULSE_TRACE_OFFSETS='maybe'"),
])
def test_a_wrong_value_names_its_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_environment_a_child_process_gets_gives_the_same_settings():
    s = Settings().with_(stream_batch_size=123, trace_offsets=True).with_tunables(pipeline_depth=3)
    assert Settings.from_env(s.to_env()) == s
    with pytest.raises(SettingsError, match="unknown tunable"):
        Settings().with_tunables(depth=3)


def test_repr_shows_no_secret():
    # A Settings is logged at start and appears in tracebacks: no password in either.
    s = Settings.from_env({"CLICKHOUSE_URL": "http://pulse:ch-secret@ch.example:8443/motcua",
                           "SUPERSET_ADMIN_PASSWORD": "ss-secret",
                           "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "pulse",
                           "KAFKA_SASL_PASSWORD": "kafka-secret"})
    shown = repr(s)
    for secret in ("ch-secret", "ss-secret", "kafka-secret"):
        assert secret not in shown
    assert "http://pulse:***@ch.example:8443/motcua" in shown
    assert s.clickhouse_url.endswith("ch-secret@ch.example:8443/motcua")  # the value itself is intact
