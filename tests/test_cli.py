import subprocess
import sys

from search.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.startswith("microsweep ")


def test_console_script_help_runs_without_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "search", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "microsweep" in out.stdout
