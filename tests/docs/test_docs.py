"""What a reader of the README and docs/ relies on: every link leads somewhere in the repository,
nothing points outside it, and the "where does X live" tables name the modules the code really has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
TOP_DIRS = "bot|commands|integrations|templates|rules|tests|bench|scripts|deploy|requirements|docs"
REPO_PATH = re.compile(rf"`((?:{TOP_DIRS})/[^`\s]*)`")
# Files the project's authors had beside the checkout, which a user of the repository does not have
# (spelled in pieces so this guard does not itself count as a reference).
OUTSIDE = ("CONTRACT" + ".md", "../" + "shared", "shared/" + "reference")


def _headings(page: Path) -> set[str]:
    slugs, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_resolve_inside_the_repository(page: Path) -> None:
    text = page.read_text()
    problems = [f"mentions {outside}" for outside in OUTSIDE if outside in text]
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"link {target} leads nowhere")
        elif anchor and dest.suffix == ".md" and anchor not in _headings(dest):
            problems.append(f"link {target}: {dest.name} has no heading #{anchor}")
    for token in set(REPO_PATH.findall(text)):
        path = token.rstrip(",.:;").split("::")[0]
        if not any(c in path for c in "<>{}*") and not (ROOT / path).exists():
            problems.append(f"`{token}` is not in the repository")
    assert not problems, problems


def test_where_tables_name_the_modules_the_code_has() -> None:
    check = subprocess.run([sys.executable, "scripts/docs_where.py", "--check"], cwd=ROOT, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
