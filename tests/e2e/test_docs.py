"""The docs run: every runnable block of README.md and docs/tutorials/ passes."""

import pytest

from conftest import REPO
from doc_blocks import Block, make_sandbox, run_block, runnable_blocks

DOCS = [REPO / "README.md", *sorted((REPO / "docs" / "tutorials").glob("*.md"))]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_runnable_blocks_pass(doc, tmp_path, digits_dir):
    blocks = runnable_blocks(doc)
    if not blocks:
        pytest.skip(f"{doc.name} has no runnable blocks")
    sandbox = make_sandbox(tmp_path, REPO, digits_dir)
    for block in blocks:
        result = run_block(block, sandbox)
        assert result.returncode == 0, f"{block.name} failed:\n{block.code}\n{result.stderr[-3000:]}"


def test_the_doc_test_catches_a_broken_flag(tmp_path, digits_dir):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n<!-- runnable -->\n```shell\npython hfcls/train.py recipes/digits/"
        "resnet-tiny_1xb64_digits.yaml --no-such-flag\n```\n\n```shell\nnot run\n```\n"
    )
    blocks = runnable_blocks(doc)
    assert [(b.line, b.language) for b in blocks] == [(3, "shell")]
    (tmp_path / "box").mkdir()
    sandbox = make_sandbox(tmp_path / "box", REPO, digits_dir)
    result = run_block(blocks[0], sandbox)
    assert result.returncode == 2 and "unrecognized arguments: --no-such-flag" in result.stderr


def test_chinese_readme_runs_the_same_commands():
    zh = REPO / "README_zh-CN.md"
    if not zh.exists():
        pytest.skip("README_zh-CN.md not written yet")
    english = [b.code for b in runnable_blocks(REPO / "README.md")]
    assert [b.code for b in runnable_blocks(zh)] == english


def test_blocks_are_parsed_with_their_language_and_line(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- runnable -->\n```python\nprint(1)\n```\n<!-- runnable -->\n````shell\necho hi\n````\n")
    assert runnable_blocks(doc) == [Block(doc, 2, "python", "print(1)\n"), Block(doc, 6, "shell", "echo hi\n")]
