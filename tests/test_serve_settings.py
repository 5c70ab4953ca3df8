"""`serve` settings: command line over environment over config file over defaults; errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from lpstream.ice import IceServer, ice_servers_from_urls, turn_rest_credentials
from lpstream.serve import main
from lpstream.serve_options import OPTIONS, SettingsError, build_parser, load_settings


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('port = 9001\nbackend = "meshwarp"\nfps = 12\nallow-origin = ["https://a"]\n')
    environ = {"LPSTREAM_CONFIG": str(config), "LPSTREAM_PORT": "9002", "LPSTREAM_FPS": "15"}
    settings = load_settings(["--fps", "20"], environ)
    assert settings.fps == 20.0  # command line
    assert settings.port == 9002  # environment over file
    assert settings.backend == "meshwarp"  # file
    assert settings.allow_origin == ("https://a",)
    assert settings.host == "127.0.0.1"  # default
    assert settings.max_participants == 4
    env_list = load_settings([], {"LPSTREAM_ALLOW_ORIGIN": "https://a, https://b"})
    assert env_list.allow_origin == ("https://a", "https://b")


def test_every_flag_has_an_environment_variable_and_a_group() -> None:
    help_text = build_parser().format_help()
    for option in OPTIONS:
        assert option.env in help_text
        assert option.env == "LPSTREAM_" + option.flag[2:].replace("-", "_").upper()
    for group in ("network and TLS", "WebRTC ICE (STUN/TURN)", "operations"):
        assert f"{group}:" in help_text


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--port", "http"], {}, "--port: 'http': not a number"),
        (["--port", "70000"], {}, "--port: '70000': must be 0..65535"),
        (
            [],
            {"LPSTREAM_MAX_PARTICIPANTS": "9"},
            "LPSTREAM_MAX_PARTICIPANTS: '9': must be 2, 3 or 4",
        ),
        (["--tls-cert", "/nope.pem", "--tls-key", "/nope.key"], {}, "no such file: /nope.pem"),
        (["--ice-server", "http://x"], {}, "--ice-server: 'http://x': must start with stun:"),
        (["--ice-server", "turn:t.example:3478"], {}, "needs a username and credential"),
        (["--turn-username", "u"], {}, "--turn-username and --turn-credential go together"),
        (["--device", "tpu"], {}, "--device: 'tpu': must be one of auto, cpu, cuda"),
        (["--print-token", "r"], {}, "--print-token needs --token-secret"),
    ],
)
def test_bad_values_are_one_clear_line_and_exit_2(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingsError, match=r"."):
        load_settings(argv, environ)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("colour = 'blue'\n")
    assert main(["--config", str(config)]) == 2
    assert f"config file {config}: unknown setting 'colour'" in capsys.readouterr().err
    config.write_text("port = [\n")
    assert main(["--config", str(config)]) == 2
    assert "not TOML" in capsys.readouterr().err
    config.write_text("port = 'x'\n")
    assert main(["--config", str(config)]) == 2
    assert f"port in {config}: 'x': not a number" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_turn_rest_credentials_follow_coturn() -> None:
    username, credential = turn_rest_credentials("s3cret", "alice", ttl_s=600, now=1_000_000)
    assert username == "1000600:alice"
    expected = hmac.new(b"s3cret", b"1000600:alice", hashlib.sha1).digest()
    assert credential == base64.b64encode(expected).decode()


def test_ice_servers_for_browsers_and_node() -> None:
    servers = ice_servers_from_urls(
        ["stun:s.example:3478", "turn:t.example:3478", "turns:t.example:5349"],
        auth_secret="k",
        ttl_s=60,
    )
    assert servers[0] == IceServer(("stun:s.example:3478",))
    assert servers[0].browser_entry("p") == {"urls": ["stun:s.example:3478"]}
    entry = servers[1].browser_entry("page", now=100)
    assert entry["urls"] == ["turn:t.example:3478", "turns:t.example:5349"]
    assert entry["username"] == "160:page" and entry["credential"]
    static = ice_servers_from_urls(["turn:t:3478"], "u", "p")[0]
    assert static.browser_entry("x") == {
        "urls": ["turn:t:3478"],
        "username": "u",
        "credential": "p",
    }


def test_settings_make_typed_ice_servers() -> None:
    settings = load_settings(
        ["--ice-server", "turn:10.0.0.1:3478", "--turn-secret", "k", "--turn-ttl", "90"], {}
    )
    (server,) = settings.ice_servers()
    assert server.auth_secret == "k" and server.ttl_s == 90
