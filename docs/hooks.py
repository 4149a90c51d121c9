"""MkDocs hooks: the pages made from the code at build time, and the repository's results/ in the site.

- ``reference/config.md``: every config key of every registered task, from the ``Options`` dataclasses
  through :func:`poolskip.engine.config.describe_keys` (what ``poolskip train --print-config`` shows);
- ``results.md``: an index of the result directories (their README titles), linking ``results/README.md``;
- the files under ``results/`` are part of the site, so links to them are checked like any other;
- docstrings' reStructuredText roles (``:class:`~a.B```) are shown as code (``B``).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _cell(value) -> str:
    text = value if isinstance(value, str) and value else repr(value)
    return "`" + text.replace("|", "\\|") + "`"


def _text(help_text: str) -> str:
    return help_text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    from poolskip.engine.config import describe_keys
    from poolskip.tasks import list_tasks

    tasks = list_tasks()
    rows = {task: describe_keys(task) for task in tasks}
    common = [r for r in rows[tasks[0]] if all(r[0] in {k for k, _, _ in rows[t]} for t in tasks)]
    common_keys = {k for k, _, _ in common}
    out = [
        "# Config reference",
        "",
        "Every key of `poolskip train`'s config, its default and what it means, generated from the config",
        "dataclasses when this site was built (the same text as `poolskip train --print-config`). A recipe or",
        "`--set` names a key as `section.key`, as a nested mapping or by its bare name when that is unique.",
        "",
        "## Keys of every task",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    out += [f"| `{k}` | {_cell(d)} | {_text(h)} |" for k, d, h in common]
    for task in tasks:
        own = [r for r in rows[task] if r[0] not in common_keys]
        out += ["", f"## Task `{task}`", "", f"`task: {task}`; its own section `{task}:`.", ""]
        out += ["| key | default | meaning |", "|---|---|---|"]
        out += [f"| `{k}` | {_cell(d)} | {_text(h)} |" for k, d, h in own]
    return "\n".join(out) + "\n"


def _title(readme: Path) -> str:
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return readme.parent.name


def results_index() -> str:
    out = [
        "# Results",
        "",
        "Measured runs live in the repository's `results/` folder: each directory holds the exact command, the",
        "data, the hardware, the date and the seeds of what ran, and its README says what it does and does not",
        "show. None of them is the paper's full protocol.",
        "",
    ]
    if (RESULTS / "README.md").is_file():
        out += ["The index of findings: [results/README.md](results/README.md).", ""]
    out += ["| directory | README |", "|---|---|"]
    for readme in sorted(RESULTS.glob("*/README.md")):
        name = readme.parent.name
        out.append(f"| [`{name}/`](results/{name}/README.md) | {_text(_title(readme))} |")
    return "\n".join(out) + "\n"


def on_files(files, config):
    files.append(File.generated(config, "reference/config.md", content=config_reference()))
    files.append(File.generated(config, "results.md", content=results_index()))
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file():
            uri = path.relative_to(ROOT).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV))
    return files


_ROLE = re.compile(r":(?:py:)?[a-z]+:<code>(~?)([^<]*)</code>")


def _role(match: re.Match) -> str:
    text = match.group(2).split(" &lt;")[0]  # :func:`text <target>` shows the text
    return f"<code>{text.rsplit('.', 1)[-1] if match.group(1) else text}</code>"


def on_page_content(html, page, config, files):
    return _ROLE.sub(_role, html).replace("::</p>", ":</p>")
