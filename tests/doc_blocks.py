"""Runnable blocks of the Markdown docs, and a sandbox to run them in.

A block is runnable when the line before its fence is `<!-- runnable -->`, or
`<!-- runnable: CHAIN -->` for a block that needs none of the main chain's outputs.
The blocks of one chain of a document run in order in one sandbox (chains in
parallel, each in its own): a copy of the repo's
recipes (digits recipes cut to 2 epochs so the docs stay quick to test), the
hfcls and launch folders, a copy of docs/ (blocks write into it), and the prepared digits under
data/digits.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

MARK = re.compile(r"^<!-- runnable(?:: ([\w-]+))? -->$")
MAIN_CHAIN = "main"
FENCE = re.compile(r"^(`{3,})(\w+)")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    language: str  # shell or python
    code: str
    chain: str = MAIN_CHAIN  # blocks of one chain run in order in one sandbox

    @property
    def name(self) -> str:
        return f"{self.doc.name}:{self.line}"


def runnable_blocks(doc: Path) -> list[Block]:
    lines = doc.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        mark = MARK.match(lines[i - 1].strip()) if match and i > 0 else None
        if mark:
            fence, language = match.groups()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(fence))
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(doc, i + 1, language, code, mark.group(1) or MAIN_CHAIN))
            i = end
        i += 1
    return blocks


def make_sandbox(root: Path, repo: Path, digits: Path, epochs: int = 2) -> Path:
    for folder in ("hfcls", "launch"):
        if (repo / folder).exists():
            (root / folder).symlink_to(repo / folder)
    shutil.copytree(repo / "docs", root / "docs")  # blocks write docs/images/: into the sandbox, not the checkout
    shutil.copytree(repo / "recipes", root / "recipes")
    for recipe in (root / "recipes" / "digits").glob("*.yaml"):
        data = yaml.safe_load(recipe.read_text())
        data.setdefault("train", {})["epochs"] = epochs
        recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    (root / "data").mkdir()
    (root / "data" / "digits").symlink_to(digits)
    return root


def block_env(*path_first: Path) -> dict:
    """A user's shell, offline: `path_first`, then this interpreter's `python` and console scripts."""
    path = os.pathsep.join([*map(str, path_first), str(Path(sys.executable).parent), os.environ["PATH"]])
    return dict(os.environ, PATH=path, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1")


def run_block(block: Block, sandbox: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    """`block` run as a user would, with the `python` and commands first on env's PATH."""
    if block.language in ("shell", "bash", "sh"):
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    elif block.language == "python":
        cmd = ["python", "-c", block.code]
    else:
        raise ValueError(f"{block.name}: cannot run a {block.language} block")
    return subprocess.run(cmd, cwd=sandbox, env=env, capture_output=True, text=True, timeout=timeout)
