"""The command line's parser, and the few lines of logic before the API is called."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import lxcow
from lxcow import cli, commands
from lxcow.errors import UsageError

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    return cli.parse_args(list(argv))


def exits(*argv: str) -> int:
    with pytest.raises(SystemExit) as err:
        parse(*argv)
    assert isinstance(err.value.code, int)
    return err.value.code


def test_create_takes_an_image_and_several_names() -> None:
    a = parse("create", "busybox", "a", "b", "c")

    assert (a.func, a.image, a.names, a.network) == (
        commands.cmd_create, "busybox", ["a", "b", "c"], None)


def test_launch_with_a_network() -> None:
    a = parse("launch", "debian", "web1", "--network", "bridge=br0,ipv4=10.0.3.5/24")

    assert a.func is commands.cmd_launch
    assert a.network == "bridge=br0,ipv4=10.0.3.5/24"


def test_exec_keeps_the_command_after_the_double_dash() -> None:
    a = parse("exec", "web1", "--", "sh", "-c", "x")

    assert (a.func, a.name, a.env) == (commands.cmd_exec, "web1", [])
    assert a.command[-3:] == ["sh", "-c", "x"]
    assert a.command in (["sh", "-c", "x"], ["--", "sh", "-c", "x"])


def test_exec_keeps_options_of_the_command() -> None:
    assert parse("exec", "web1", "ls", "-l", "--all").command == ["ls", "-l", "--all"]


def test_exec_env_before_the_name() -> None:
    a = parse("exec", "--env", "A=1", "--env", "B=2", "web1", "--", "env")

    assert a.env == ["A=1", "B=2"]
    assert a.command[-1:] == ["env"]


def test_list_format_json() -> None:
    a = parse("list", "--format", "json")

    assert (a.func, a.format) == (commands.cmd_list, "json")


@pytest.mark.parametrize("argv", [["list"], ["image", "list"], ["pool", "info"],
                                  ["info", "web1"], ["image", "info", "debian"]])
def test_format_defaults_to_table(argv: list[str]) -> None:
    assert parse(*argv).format == "table"


def test_stop_force_and_timeout() -> None:
    a = parse("stop", "--force", "--timeout", "5", "a")

    assert (a.func, a.force, a.timeout, a.names) == (commands.cmd_stop, True, 5, ["a"])


def test_stop_defaults() -> None:
    a = parse("restart", "a", "b")

    assert (a.func, a.force, a.timeout, a.names) == (commands.cmd_restart, False, 30, ["a", "b"])


def test_global_options() -> None:
    a = parse("--state-dir", "/srv/lxcow", "-v", "--lock-timeout", "2.5", "start", "web1")

    assert (a.state_dir, a.debug, a.lock_timeout) == ("/srv/lxcow", True, 2.5)
    assert (a.func, a.names) == (commands.cmd_start, ["web1"])


def test_global_defaults() -> None:
    a = parse("list")

    assert (a.state_dir, a.debug, a.lock_timeout) == (None, False, 60.0)


def test_image_import() -> None:
    a = parse("image", "import", "rootfs.tar.xz", "--meta", "meta.tar.xz", "--alias", "deb")

    assert (a.func, a.rootfs, a.meta, a.alias) == (commands.cmd_image_import, "rootfs.tar.xz",
                                                   "meta.tar.xz", "deb")


def test_image_alias_set() -> None:
    a = parse("image", "alias", "set", "deb", "0123abcd")

    assert (a.func, a.alias, a.image) == (commands.cmd_alias_set, "deb", "0123abcd")


def test_config_set() -> None:
    a = parse("config", "set", "web1", "limits.memory", "256MiB")

    assert (a.func, a.name, a.key, a.value) == (commands.cmd_config_set, "web1", "limits.memory",
                                                "256MiB")


def test_init_options() -> None:
    a = parse("init", "--size", "10GiB", "--source", "/dev/vdb", "--force")

    assert (a.func, a.size, a.source, a.force) == (commands.cmd_init, "10GiB", "/dev/vdb", True)


@pytest.mark.parametrize("argv", [
    ["list", "--format", "xml"],
    ["image", "list", "--format", "XML"],
    ["frobnicate"],
    [],
    ["image"],
    ["image", "frob"],
    ["config", "get", "web1"],
    ["create", "busybox"],
    ["start"],
    ["stop", "--timeout", "soon", "a"],
    ["--lock-timeout", "x", "list"],
    ["image", "build", "alpine"],
    ["list", "--bogus"],
])
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exits(*argv) == 2

    err = capsys.readouterr().err
    assert err.startswith("lxcow: error: ")
    assert err.count("\n") == 1


def test_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert exits("--help") == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    assert "7 bad or unsafe data" in out


class RecordingApi:
    """Stands in for the API object, to see what ``cmd_exec`` passes on."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []

    def exec(self, name: str, command: list[str], env: dict[str, str]) -> int:
        self.calls.append((name, command, env))
        return self.status


def test_cmd_exec_passes_command_env_and_status_through() -> None:
    api = RecordingApi(status=42)
    args = parse("exec", "--env", "A=1", "--env", "B=x=y", "--env", "C=", "web1", "--", "sh",
                 "-c", "exit 42")

    assert commands.cmd_exec(api, args) == 42  # type: ignore[arg-type]
    assert api.calls == [("web1", ["sh", "-c", "exit 42"], {"A": "1", "B": "x=y", "C": ""})]


@pytest.mark.parametrize("argv", [
    ["web1", "--env", "A=1", "--", "env"],
    ["web1", "--env=A=1", "--", "env"],
    ["--env", "A=1", "web1", "env"],
    ["web1", "--env", "A=1", "env"],
])
def test_cmd_exec_takes_env_before_or_after_the_name(argv: list[str]) -> None:
    api = RecordingApi(status=0)

    commands.cmd_exec(api, parse("exec", *argv))  # type: ignore[arg-type]

    assert api.calls == [("web1", ["env"], {"A": "1"})]


def test_cmd_exec_refuses_env_without_a_value() -> None:
    args = parse("exec", "web1", "--env")

    with pytest.raises(UsageError, match="--env"):
        commands.cmd_exec(RecordingApi(status=0), args)  # type: ignore[arg-type]


def test_cmd_exec_runs_everything_after_the_double_dash() -> None:
    api = RecordingApi(status=0)

    commands.cmd_exec(api, parse("exec", "web1", "--", "--env", "A=1"))  # type: ignore[arg-type]

    assert api.calls == [("web1", ["--env", "A=1"], {})]


def test_cmd_exec_drops_one_leading_double_dash() -> None:
    api = RecordingApi(status=0)
    args = argparse.Namespace(name="web1", env=[], command=["--", "--", "x"])

    commands.cmd_exec(api, args)  # type: ignore[arg-type]

    assert api.calls == [("web1", ["--", "x"], {})]


@pytest.mark.parametrize("item", ["A", "=1", ""])
def test_cmd_exec_refuses_bad_env(item: str) -> None:
    api = RecordingApi(status=0)
    args = argparse.Namespace(name="web1", env=[item], command=["true"])

    with pytest.raises(UsageError, match="invalid --env") as err:
        commands.cmd_exec(api, args)  # type: ignore[arg-type]

    assert err.value.exit_code == 2
    assert api.calls == []


def test_version_from_python_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "lxcow", "--version"], capture_output=True,
                          text=True, timeout=30, cwd=REPO)

    assert proc.returncode == 0
    assert proc.stdout.strip() == f"lxcow {lxcow.__version__}"


def test_no_command_from_python_m_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "lxcow"], capture_output=True, text=True,
                          timeout=30, cwd=REPO)

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("lxcow: error: ")
    assert proc.stderr.count("\n") == 1
