"""The documentation's promises: every Python code block of README.md and docs/ runs, the test command is
what CI runs, and the generated reference pages cover every config key and every result directory.

A block fenced as ```python runs here, in a fresh namespace; an example that needs a dataset, a GPU or a
long time is written as a shell block (indented, or fenced as ```bash) and does not run.
"""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [
    (f"{page.relative_to(ROOT)}:{i}", code)
    for page in PAGES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S), 1)
]


def test_readme_and_docs_have_python_blocks():
    assert any(name.startswith("README.md") for name, _ in BLOCKS)
    assert any(name.startswith("docs") for name, _ in BLOCKS)


@pytest.mark.parametrize("name, code", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_python_block_runs(name, code):
    exec(compile(code, name, "exec"), {})


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(command) == 1 and command[0] in README
    assert "mkdocs build --strict" in command[0]
    assert command[0] in (ROOT / "docs" / "getting-started.md").read_text()


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_lists_every_key_of_every_task():
    from poolskip.engine.config import describe_keys
    from poolskip.tasks import list_tasks

    page = _hooks().config_reference()
    for task in list_tasks():
        assert f"## Task `{task}`" in page
        for key, _, _ in describe_keys(task):
            assert f"| `{key}` |" in page, key


def test_results_index_links_every_result_readme():
    page = _hooks().results_index()
    for readme in (ROOT / "results").glob("*/README.md"):
        assert f"(results/{readme.parent.name}/README.md)" in page
