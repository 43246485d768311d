import dataclasses
from pathlib import Path

import pytest

from ivoz.cli import _build_parser, _config_from_args, main
from ivoz.config import Config


def test_defaults_listen_on_loopback_with_reference_ports() -> None:
    config = Config()
    assert config.sip_host == "127.0.0.1"
    assert (config.sip_udp_port, config.sip_tls_port) == (5060, 5061)
    assert (config.sip_ws_port, config.sip_wss_port) == (10080, 10081)
    assert (config.ng_port, config.rtp_port_min, config.rtp_port_max) == (22222, 13000, 19000)


def test_environment_overrides_defaults() -> None:
    config = Config.from_env({"IVOZ_SIP_UDP_PORT": "5070", "IVOZ_TLS_CERT": "/x.pem"})
    assert config.sip_udp_port == 5070
    assert config.tls_cert == Path("/x.pem")


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="IVOZ_SIP_UDP_PORT"):
        Config.from_env({"IVOZ_SIP_UDP_PORT": "many"})


def test_connection_limits_from_the_environment() -> None:
    config = Config()
    assert (config.sip_max_connections, config.sip_max_connections_per_ip) == (4096, 64)
    assert config.sip_handshake_timeout == 10.0
    config = Config.from_env(
        {
            "IVOZ_SIP_MAX_CONNECTIONS": "100",
            "IVOZ_SIP_MAX_CONNECTIONS_PER_IP": "0",
            "IVOZ_SIP_HANDSHAKE_TIMEOUT": "2.5",
        }
    )
    assert (config.sip_max_connections, config.sip_max_connections_per_ip) == (100, 0)
    assert config.sip_handshake_timeout == 2.5


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("IVOZ_SIP_MAX_CONNECTIONS", "0", "must be at least 1"),
        ("IVOZ_SIP_MAX_CONNECTIONS", "lots", "is not valid"),
        ("IVOZ_SIP_MAX_CONNECTIONS_PER_IP", "-1", "must be 0 or more"),
        ("IVOZ_SIP_HANDSHAKE_TIMEOUT", "0", "positive number of seconds"),
        ("IVOZ_SIP_HANDSHAKE_TIMEOUT", "inf", "positive number of seconds"),
        ("IVOZ_SIP_HANDSHAKE_TIMEOUT", "soon", "is not valid"),
    ],
)
def test_bad_connection_limits_are_refused_by_name(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        Config.from_env({name: raw})


def test_bad_setting_stops_the_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVOZ_SIP_MAX_CONNECTIONS", "0")
    assert main(["run"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ivoz: IVOZ_SIP_MAX_CONNECTIONS: 0 is not valid (must be at least 1)"
    )


def test_flags_override_environment_and_pick_roles() -> None:
    args = _build_parser().parse_args(["run", "--role", "relay", "--ng-port", "2300"])
    config = _config_from_args(args)
    assert config.roles == ("relay",)
    assert config.ng_port == 2300
    assert dataclasses.replace(config, roles=()).roles == ()


def test_sqlite_is_the_default_database(tmp_path: Path) -> None:
    url = Config(data_dir=tmp_path).effective_database_url
    assert url.startswith("sqlite+aiosqlite:///") and url.endswith("ivoz.sqlite3")


def test_sip_core_is_chosen_by_configuration() -> None:
    from ivoz.cli import _choose_sip_core
    from ivoz.sip import speedups

    try:
        off = _choose_sip_core(Config.from_env({"IVOZ_SIP_COMPILED": "false"}))
        assert not speedups.compiled()
        assert off.startswith("Python")
        on = _choose_sip_core(Config())
        assert speedups.compiled() == speedups.available()
        if speedups.available():
            assert on == "compiled"
    finally:
        speedups.use_compiled(True)


def test_run_tunes_the_garbage_collector() -> None:
    import gc

    from ivoz.cli import GC_THRESHOLDS, _tune_gc

    before = gc.get_threshold()
    try:
        _tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        # young collections rarer than CPython's default (700), never switched off
        assert 700 < GC_THRESHOLDS[0] < 1_000_000
    finally:
        gc.set_threshold(*before)
