"""The docs run: every runnable block of README.md and docs/tutorials/ passes."""

import pytest

from conftest import REPO
from doc_blocks import Block, block_env, make_sandbox, run_block, runnable_blocks

DOCS = [REPO / "README.md", *sorted((REPO / "docs" / "tutorials").glob("*.md"))]


def doc_chains() -> list:
    """(doc, chain) of every chain of runnable blocks: each chain is a test of its own, so the two
    workers share a long document."""
    chains = {(doc, block.chain): None for doc in DOCS for block in runnable_blocks(doc)}
    return [pytest.param(doc, chain, id=f"{doc.name}:{chain}") for doc, chain in chains]


@pytest.mark.slow
@pytest.mark.parametrize("doc, chain", doc_chains())
def test_runnable_blocks_pass(doc, chain, tmp_path, digits_dir, warm_bin):
    sandbox, env = make_sandbox(tmp_path, REPO, digits_dir), block_env(warm_bin)
    for block in (block for block in runnable_blocks(doc) if block.chain == chain):
        result = run_block(block, sandbox, env)
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
    result = run_block(blocks[0], sandbox, block_env())
    assert result.returncode == 2 and "unrecognized arguments: --no-such-flag" in result.stderr


def test_chinese_readme_runs_the_same_commands():
    zh = REPO / "README_zh-CN.md"
    if not zh.exists():
        pytest.skip("README_zh-CN.md not written yet")
    english = [(b.code, b.chain) for b in runnable_blocks(REPO / "README.md")]
    assert [(b.code, b.chain) for b in runnable_blocks(zh)] == english


def test_blocks_are_parsed_with_their_language_and_line(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- runnable -->\n```python\nprint(1)\n```\n<!-- runnable -->\n````shell\necho hi\n````\n")
    assert runnable_blocks(doc) == [Block(doc, 2, "python", "print(1)\n"), Block(doc, 6, "shell", "echo hi\n")]
    doc.write_text("<!-- runnable: side -->\n```shell\necho side\n```\n<!-- runnable:side -->\n```shell\nx\n```\n")
    assert runnable_blocks(doc) == [Block(doc, 2, "shell", "echo side\n", "side")]  # a malformed mark is no mark
