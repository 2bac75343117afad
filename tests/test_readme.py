"""Every ```python block of README.md runs verbatim, on a fresh machine's terms.

Each block is run as it stands (``python -c``) in a fresh subprocess whose current directory is
an empty temporary folder, with ``BOT4_HOME=<folder>/.bot4``, ``DAGSTER_HOME`` unset and no
other ``BOT4_*`` setting, so it can rely on nothing but the installed package and what it builds
itself. It runs twice in the same folder: an example must also work when the warehouse or the
order store it writes already exists. The blocks are read from the README at test time, so the
test covers whatever examples the README has.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MIN_PYTHON_BLOCKS = 5
RUNS = 2
HANG_GUARD_S = 600  # a block that blocks forever (a lock, a prompt) fails instead of hanging

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
PYTHON_INFO = {"python", "py", "python3"}


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    heading: str  # the nearest Markdown heading above the block ("" if none)
    code: str

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")


def python_blocks(text: str) -> list[Block]:
    """The fenced code blocks whose info string is python (CommonMark fences: ``` or ~~~, at
    least three, indented at most three spaces, closed by the same character at least as long)."""
    blocks: list[Block] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            title = HEADING.match(lines[i])
            if title is not None:
                heading = title["title"]
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, j = [], i + 1
        while j < len(lines) and closing.match(lines[j]) is None:
            body.append(_dedent(lines[j], indent))
            j += 1
        words = opening["info"].split()
        if words and words[0].lower() in PYTHON_INFO:
            blocks.append(Block(i + 1, heading, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _dedent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces (the fence's own indentation), as CommonMark does."""
    strip = len(line) - len(line.lstrip(" "))
    return line[min(strip, indent):]


def _ids(blocks: list[Block]) -> list[str]:
    """The heading above each block (or its first line), numbered when a name repeats."""
    names = [b.heading or b.first_line or f"line {b.line}" for b in blocks]
    ids = []
    for k, name in enumerate(names):
        ids.append(name if names.count(name) == 1 else f"{name} #{names[:k + 1].count(name)}")
    return ids


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BOT4_") and k != "DAGSTER_HOME"}
    env["BOT4_HOME"] = str(folder / ".bot4")
    return env


def _tail(text: str, lines: int = 60) -> str:
    kept = text.rstrip().splitlines()
    return "\n".join((["..."] if len(kept) > lines else []) + kept[-lines:])


def test_readme_has_the_python_examples():
    assert len(BLOCKS) >= MIN_PYTHON_BLOCKS, (
        f"{README} has {len(BLOCKS)} ```python block(s); expected at least {MIN_PYTHON_BLOCKS}")


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_readme_python_block_runs_verbatim_twice(block: Block, tmp_path: Path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    env = _env(folder)
    for run in range(1, RUNS + 1):
        done = subprocess.run([sys.executable, "-c", block.code], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
        code = done.returncode
        assert code == 0, (
            f"{README.name} line {block.line} ({block.heading or block.first_line}): run {run} of "
            f"{RUNS} in {folder} exited with {code}\n"
            f"--- block ---\n{block.code}"
            f"--- stdout (tail) ---\n{_tail(done.stdout)}\n"
            f"--- stderr ---\n{_tail(done.stderr, 200)}")
