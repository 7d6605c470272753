"""``santinel config check F``: exit 0 with one line when valid, 2 with one line per error."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_santinel

DATA = Path(__file__).resolve().parent.parent / "data" / "config"


def test_valid_config_exits_0_and_says_so() -> None:
    result = run_santinel("config", "check", str(DATA / "good.yml"))
    assert result.returncode == 0
    assert result.stdout == f"{DATA / 'good.yml'}: valid\n"


def test_invalid_config_exits_2_with_one_line_per_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("capture:\n  snaplen: 1\n  bfp_filter: x\nweb:\n  listen_address: nope\n")
    result = run_santinel("config", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_santinel("config", "check", str(tmp_path / "absent.yml"))
    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / 'absent.yml'}: cannot read: No such file or directory\n"


def test_a_broken_web_config_named_by_the_config_is_reported(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  prometheus: plaintext-password\n")
    path = tmp_path / "santinel.yml"
    path.write_text("web:\n  config_file: web.yml\n")
    result = run_santinel("config", "check", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{tmp_path / 'web.yml'}:2: basic_auth_users.prometheus: not a bcrypt hash "
        "(plaintext passwords are refused)\n"
    )
    assert "plaintext-password" not in result.stderr
