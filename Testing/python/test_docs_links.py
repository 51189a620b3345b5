"""The documents a reader follows: every relative link and image resolves, every ``#anchor`` names a heading, every
source file and ``python -m`` module they name exists, and the README stays one short page whose test command is the
one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md"),
                    *(ROOT / "training" / "records").glob("**/README.md")])
README_MAX_LINES = 160

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", flags=re.MULTILINE)
SOURCE_NAME = re.compile(r"`([\w./-]+\.(?:py|sh|ui))`")
MODULE = re.compile(r"python -m ([\w.]+)")
#: where ``python -m`` finds the project's packages (the editable install's package roots)
PACKAGE_ROOTS = (ROOT, ROOT / "BrainTumorXAI")


def prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    ids = set()
    for title in HEADING.findall(FENCE.sub("", markdown)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def broken_links(document: Path) -> list[str]:
    """Each relative link of ``document`` whose file, folder or heading does not exist, as ``target: why``."""
    problems = []
    for target in LINK.findall(prose(document.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
            continue  # http:, https:, mailto: ... are not files of this repository
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.exists():
            problems.append(f"{target}: no such file or folder")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{fragment} in {resolved.name}")
    return problems


def repository_files() -> list[str]:
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    return ["/" + str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]


def module_exists(name: str) -> bool:
    """``python -m name`` has a file to run: ``a/b.py`` or a package ``a/b/__main__.py``, under a package root."""
    relative = Path(*name.split("."))
    return any((root / relative).with_suffix(".py").is_file() or (root / relative / "__main__.py").is_file()
               for root in PACKAGE_ROOTS)


def missing_sources(text: str, files: list[str]) -> list[str]:
    """Source files (``.py``, ``.sh``, ``.ui``, by a path tail) and ``python -m`` modules a text names that do not
    exist."""
    missing = [f"`{name}`" for name in SOURCE_NAME.findall(text)
               if not any(path.endswith("/" + name.lstrip("./")) for path in files)]
    return missing + [f"python -m {name}" for name in MODULE.findall(text)
                      if name.split(".")[0] in {"training", "BrainTumorXAILib"} and not module_exists(name)]


@pytest.fixture(scope="module")
def files():
    return repository_files()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_source_file_and_module_exists(document, files):
    missing = missing_sources(document.read_text(encoding="utf-8"), files)
    assert not missing, f"{document.relative_to(ROOT)} names what is not there: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    assert not broken_links(document), f"{document.relative_to(ROOT)}: {broken_links(document)}"


def test_the_documents_are_there():
    names = {str(p.relative_to(ROOT)) for p in DOCUMENTS}
    assert {"README.md", "CHANGELOG.md", "docs/model_card.md", "docs/getting_started.md", "docs/slicer.md",
            "docs/training.md", "docs/performance.md"} <= names


def test_readme_is_one_short_page_that_starts_with_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    first_block = readme.split("```")[1]
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.startswith("bash scripts/")]
    assert ci_commands and all(command in first_block for command in ci_commands), \
        f"README's first code block must hold .ci/run's command verbatim: {ci_commands}"


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    """The checker itself: a missing file, a missing heading and a link hidden in code are told apart."""
    (tmp_path / "other.md").write_text("# Title\n## What `analyze` writes\n## Title\n")
    (tmp_path / "page.md").write_text(
        "[ok](other.md#what-analyze-writes) [repeat](other.md#title-1) ![img](missing.png)\n"
        "[bad anchor](other.md#nowhere) [web](https://example.org/x) `[code](nope.md)`\n"
        "```\n[fenced](nope.md)\n```\n[self](#local)\n## Local\n")
    assert broken_links(tmp_path / "page.md") == ["missing.png: no such file or folder",
                                                  "other.md#nowhere: no heading #nowhere in other.md"]


def test_a_renamed_module_is_reported():
    """The checker itself: a file or module that moved away is named; an existing one is not."""
    text = "`inference/predictor.py`, `scripts/test.sh`, `nowhere/gone.py`; python -m training.evaluate and " \
           "python -m training.no_such_module, python -m pip"
    files = ["/BrainTumorXAI/BrainTumorXAILib/inference/predictor.py", "/scripts/test.sh"]
    assert missing_sources(text, files) == ["`nowhere/gone.py`", "python -m training.no_such_module"]
