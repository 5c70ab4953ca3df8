"""Every setting of `python -m lpstream.serve`, in one table: flag, environment, config file.

Precedence, highest first: the command line, `LPSTREAM_<NAME>` environment variables, the
TOML config file (`--config FILE` or `$LPSTREAM_CONFIG`), the defaults below. The names are
the same everywhere: `--tls-cert` is `LPSTREAM_TLS_CERT` and `tls-cert` (or `tls_cert`) in
the file. Repeatable flags take a list in the file and a comma-separated value in the
environment. A bad value in any of them is one line naming where it came from (`SettingsError`),
and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpstream.errors import LpstreamError
from lpstream.ice import DEFAULT_TTL_S, ICE_SCHEMES, IceServer, ice_servers_from_urls
from signaling import Limits

ENV_PREFIX = "LPSTREAM_"
CONFIG_ENV = "LPSTREAM_CONFIG"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(LpstreamError):
    """A setting with a bad value; the message names the flag, variable or file key."""


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be 0..65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be ≥ 1")
    return value


def _participants(text: str) -> int:
    value = int(text)
    if not 2 <= value <= 4:
        raise ValueError("must be 2, 3 or 4")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be ≥ 0")
    return value


def _existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def _ice_url(text: str) -> str:
    if not text.startswith(ICE_SCHEMES):
        raise ValueError("must start with stun:, stuns:, turn: or turns:")
    return text


def _ws_url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise ValueError("must be a ws:// or wss:// URL")
    return text


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


@dataclass(frozen=True)
class Option:
    """One setting: its flag, where --help shows it, how its text becomes a value."""

    flag: str
    group: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    repeat: bool = False
    """A list: the flag repeats, the file takes an array, the environment commas."""
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


NETWORK, ICE, MEDIA, ACCESS, OPERATIONS = (
    "network and TLS",
    "WebRTC ICE (STUN/TURN)",
    "media",
    "access and limits",
    "operations",
)
OPTIONS: tuple[Option, ...] = (
    Option("--host", NETWORK, "address to listen on (0.0.0.0: every interface)", "127.0.0.1"),
    Option("--port", NETWORK, "port for HTTP(S) and the websocket (0: any free one)", 8080, _port),
    Option(
        "--tls-cert",
        NETWORK,
        "PEM certificate: serve https:// and wss://",
        None,
        _existing_file,
        metavar="FILE",
    ),
    Option(
        "--tls-key", NETWORK, "PEM private key of --tls-cert", None, _existing_file, metavar="FILE"
    ),
    Option(
        "--public-url",
        NETWORK,
        "URL people open, when behind a reverse proxy (banner only)",
        None,
        metavar="URL",
    ),
    Option(
        "--peer-node",
        NETWORK,
        "share calls with another node: register at its signaling",
        None,
        _ws_url,
        metavar="WS_URL",
    ),
    Option(
        "--allow-origin",
        NETWORK,
        "extra allowed page origin (repeatable)",
        (),
        repeat=True,
        metavar="ORIGIN",
    ),
    Option(
        "--ice-server",
        ICE,
        "STUN/TURN URL, e.g. turn:turn.example.org:3478 (repeatable)",
        (),
        _ice_url,
        repeat=True,
        metavar="URL",
    ),
    Option("--turn-username", ICE, "static TURN username for every turn: URL", None),
    Option("--turn-credential", ICE, "static TURN password of --turn-username", None),
    Option(
        "--turn-secret",
        ICE,
        "TURN REST shared secret (coturn static-auth-secret): "
        "short-lived credentials are minted per page and per peer connection",
        None,
    ),
    Option(
        "--turn-ttl",
        ICE,
        "lifetime of minted TURN credentials, seconds",
        DEFAULT_TTL_S,
        _positive_int,
        metavar="S",
    ),
    Option("--backend", MEDIA, "motion/render backend: auto, meshwarp, liveportrait", "auto"),
    Option("--weights", MEDIA, "LivePortrait weights folder", None, metavar="DIR"),
    Option("--device", MEDIA, "cpu, cuda or auto", "auto", _one_of("auto", "cpu", "cuda")),
    Option("--fps", MEDIA, "avatar frame rate", 25.0, _positive_float),
    Option("--node-id", MEDIA, "unique id of this node (default: random)", None),
    Option("--token-secret", ACCESS, "require HMAC room tokens", None),
    Option("--max-participants", ACCESS, "per room (2-4)", 4, _participants),
    Option("--max-rooms", ACCESS, "rooms at once", Limits.max_rooms, _positive_int),
    Option(
        "--max-connections",
        ACCESS,
        "websocket connections at once",
        Limits.max_connections,
        _positive_int,
    ),
    Option(
        "--drain-seconds",
        OPERATIONS,
        "on SIGTERM/Ctrl-C: how long calls may go on after browsers are told (0: stop at once)",
        10.0,
        _non_negative_float,
        metavar="S",
    ),
    Option(
        "--log-format",
        OPERATIONS,
        "text, or json: one object per line",
        "text",
        _one_of(*LOG_FORMATS),
    ),
    Option("--log-level", OPERATIONS, "debug, info, warning, error", "info", _one_of(*LOG_LEVELS)),
)
BY_DEST = {option.dest: option for option in OPTIONS}


def build_parser() -> argparse.ArgumentParser:
    """The command line: flags default to None so that a flag not given is known as such."""
    parser = argparse.ArgumentParser(
        prog="python -m lpstream.serve",
        description="Serve the avatar call: web client, signaling and the WebRTC media node.",
        epilog=f"Every setting is also ${ENV_PREFIX}<NAME> (e.g. LPSTREAM_TLS_CERT) or a key of "
        f'the TOML file given by --config or ${CONFIG_ENV} (e.g. tls-cert = "cert.pem"); '
        "the command line wins, then the environment, then the file.",
    )
    commands = parser.add_argument_group("commands and config file")
    commands.add_argument("--config", metavar="FILE", help=f"TOML settings file (${CONFIG_ENV})")
    commands.add_argument("--print-token", metavar="ROOM", help="print a room token and exit")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        group = groups.get(option.group) or parser.add_argument_group(option.group)
        groups[option.group] = group
        default = "" if option.default in (None, ()) else f" (default {option.default})"
        group.add_argument(
            option.flag,
            dest=option.dest,
            default=None,
            action="append" if option.repeat else "store",
            metavar=option.metavar,
            help=option.help + default + f" [{option.env}]",
        )
    return parser


@dataclass(frozen=True)
class Settings:
    """The merged, checked settings; `values[dest]` for each option, plus derived objects."""

    values: Mapping[str, Any]
    print_token: str | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def tls(self) -> bool:
        return self.values["tls_cert"] is not None

    def ice_servers(self) -> list[IceServer]:
        return ice_servers_from_urls(
            list(self.values["ice_server"]),
            self.values["turn_username"],
            self.values["turn_credential"],
            self.values["turn_secret"],
            self.values["turn_ttl"],
        )


def _convert(option: Option, raw: Any, where: str) -> Any:
    if option.repeat:
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            raise SettingsError(f"{where}: {raw!r}: must be a list")
        return tuple(_parse(option, str(i).strip(), where) for i in items if str(i).strip())
    if isinstance(raw, list | dict):
        raise SettingsError(f"{where}: {raw!r}: must be a single value")
    return _parse(option, str(raw), where)


def _parse(option: Option, text: str, where: str) -> Any:
    try:
        return option.parse(text)
    except ValueError as error:
        reason = str(error)
        if "invalid literal" in reason or "could not convert" in reason:
            reason = "not a number"
        raise SettingsError(f"{where}: {text!r}: {reason}") from None


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        raise SettingsError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path}: not TOML: {error}") from None
    found: dict[str, Any] = {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        if dest not in BY_DEST:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
        found[dest] = value
    return found


def load_settings(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge command line, environment, config file and defaults; raise SettingsError."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    config_path = args.config or environ.get(CONFIG_ENV)
    from_file = _read_file(config_path) if config_path else {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        cli = getattr(args, option.dest)
        if cli is not None:
            values[option.dest] = _convert(option, cli, option.flag)
        elif option.env in environ:
            values[option.dest] = _convert(option, environ[option.env], option.env)
        elif option.dest in from_file:
            where = f"{option.flag.removeprefix('--')} in {config_path}"
            values[option.dest] = _convert(option, from_file[option.dest], where)
        else:
            values[option.dest] = option.default
    settings = Settings(values, args.print_token)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError("--tls-cert and --tls-key go together")
    if (settings.turn_username is None) != (settings.turn_credential is None):
        raise SettingsError("--turn-username and --turn-credential go together")
    if settings.print_token and not settings.token_secret:
        raise SettingsError("--print-token needs --token-secret")
    try:
        settings.ice_servers()
    except ValueError as error:
        raise SettingsError(str(error)) from None
