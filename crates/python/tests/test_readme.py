"""The package README's complete examples run as written (the Django
fragments, full of `...`, are exercised by the test project instead)."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
COMPLETE = [b for b in BLOCKS if "..." not in b]


def test_the_readme_has_complete_examples():
    assert len(COMPLETE) >= 2


def test_each_complete_example_runs(capsys):
    for block in COMPLETE:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert "https://media.example.com/media/" in capsys.readouterr().out
