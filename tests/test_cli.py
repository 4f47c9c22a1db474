import subprocess
import sys

import pytest

from analysis import results as R
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


def test_a_command_imports_only_its_own_module():
    """``microsweep status RUN`` builds only its own parser: no command module that imports
    torch or pandas for its defaults (pretrain, simulate) is loaded, so a start costs no
    seconds; ``--help`` still lists every command."""
    printed = fresh_python(
        "p = build_parser(['status', 'RUN']); assert p.parse_args(['status', 'RUN']).func; "
        "print(sorted(m for m in sys.modules if m.startswith('search.commands.')), "
        "'torch' in sys.modules)"
    )
    assert printed == ["['search.commands.status']", "False"]
    listed = subprocess.run([sys.executable, "-m", "search", "--help"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    assert all(name in listed for name in ("pretrain", "simulate", "sweep", "weights"))


def test_help_and_pretrain_help_import_no_torch():
    """Every command's parser (``microsweep --help``) takes its defaults without torch/smp."""
    printed = fresh_python(
        "build_parser([]); p = build_parser(['pretrain']); "
        "d = p.parse_args(['pretrain', '--data', 'D', '--zoo', 'Z', '--name', 'N']); "
        "print(d.encoder, d.epochs > 0, 'torch' in sys.modules)"
    )
    assert printed == ["resnet18", "True", "False"]


def fresh_python(code: str) -> list[str]:
    """What ``code`` prints in a new interpreter (nothing imported yet but the parser)."""
    code = f"import sys; from search.cli import build_parser; {code}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(
    ("status", "said"), [(R.COMPLETED, "(none reported)"), (R.STOPPED, "(not completed)")]
)
def test_summary_says_why_the_best_has_no_test_iou(tmp_path, status, said):
    from types import SimpleNamespace

    from core.storage import Location
    from search.commands.sweep import format_summary
    from trainables.task import get_task

    best = {R.TRIAL: "t1", R.STATUS: status, R.VAL_IOU: 0.5, "decoder": "Unet", R.SEED: 0}
    exp = SimpleNamespace(task=get_task("segmentation"), space={"decoder": None}, train={})
    result = SimpleNamespace(counts={status: 1}, run_dir=Location.parse(tmp_path), best=best,
                             plan=SimpleNamespace(experiment=exp))  # fmt: skip
    summary = format_summary(result)
    assert f"val IoU 0.5000, test IoU - {said}" in summary
    assert "best trial: t1 decoder=Unet seed=0" in summary
