"""The README is the contract with a new user: its commands are what CI runs, its example runs."""

import re
import subprocess
import sys

import pytest
from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _block_after(heading_text: str, lang: str = "bash") -> str:
    i = README.index(heading_text)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, i)
    return m.group(1).strip()


def test_ci_runs_exactly_the_readme_install_lint_and_test_commands():
    ci = (REPO / ".ci" / "run").read_text()
    install = _block_after("Install everything")
    test = _block_after("Run the tests")
    lint = _block_after("Lint the code")
    assert install in ci and test in ci and lint in ci
    assert ci.index(install) < ci.index(lint) < ci.index(test)  # lint after the install, before the tests
    assert "transferkit demo" in _block_after("as a first thing to run")
    assert "-eq 5" in ci  # pytest's "no tests collected" fails the run


@pytest.mark.slow
def test_demo_then_the_readme_python_example_runs(tmp_path):
    demo = subprocess.run([sys.executable, "-m", "transferkit", "demo"], cwd=tmp_path, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("imagenet-photos/")}
    assert len(rows) == 3, out
    assert rows["imagenet-photos/china.png"] == "palace" and rows["imagenet-photos/flower.png"] == "daisy"
    assert "photos-report.html" in out and (tmp_path / "transferkit-demo" / "photos-report.html").is_file()
    assert "raw pixels win" in out  # the digits lesson: 6 vs 8 digits are far from ImageNet
    summary = (tmp_path / "transferkit-demo" / "demo-summary.json").read_text()
    assert '"predict_total": 9' in summary

    example = _block_after("this runs as is", lang="python")
    proc = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "macro avg" in proc.stdout and "efficientnet_lite0" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transferkit-demo"]  # the example writes nothing else
