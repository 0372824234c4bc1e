"""The README's test command is what CI runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    # The block may carry a docs-test marker (tests/test_docs.py) on the line before its fence.
    block = re.search(r"### Run the tests\n+(?:<!--[^\n]*-->\n)?```bash\n(.+?)\n```", readme,
                      re.S)
    assert block, "README.md has no '### Run the tests' bash block"
    command = block.group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == command


def test_readme_stays_short():
    """The README is for users: what kzoo is, how to start, links; the rest is in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"
