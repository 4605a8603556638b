"""hfcls.cli.heavy_imports: the collector off while a command imports the stack, what it made frozen, once;
and no command imports the stack before its flags are parsed."""

import gc
import subprocess
import sys
import time
from pathlib import Path

import hfcls.cli
from hfcls.cli import heavy_imports

PROBE = """
import gc
from hfcls.cli import heavy_imports
with heavy_imports():
    assert not gc.isenabled()
    with heavy_imports():  # nested: the inner block leaves the collector to the outer one
        import json
    assert not gc.isenabled()
    import torch
assert gc.isenabled()
frozen = gc.get_freeze_count()
assert frozen > 100_000, frozen  # torch's objects, out of every later collection
with heavy_imports():
    import email.mime.text, xml.dom.minidom
assert gc.get_freeze_count() <= frozen  # a second command in the process freezes nothing more
print("ok")
"""


def test_a_fresh_process_imports_without_the_collector_and_freezes_once():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_the_collector_is_left_as_the_caller_had_it():
    gc.disable()
    try:
        with heavy_imports():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with heavy_imports():
        assert not gc.isenabled()
    assert gc.isenabled()


CLI = Path(hfcls.cli.__file__).parent
IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    heavy = [m for m in ("torch", "transformers") if m in sys.modules]
    if heavy:
        sys.exit(f"importing {name} imported {', '.join(heavy)}")
"""


def test_every_command_module_imports_without_torch_or_transformers():
    # What a command needs before its flags are parsed; the stack comes in heavy_imports() after.
    modules = ["hfcls.cli", *(f"hfcls.cli.{path.stem}" for path in sorted(CLI.glob("*.py")) if path.stem != "__init__")]
    assert len(modules) > 15
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, *modules], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_eval_help_returns_within_a_second():
    script = Path(sys.executable).parent / "hfcls-eval"
    started = time.perf_counter()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0 and "usage: hfcls-eval" in done.stdout
    assert elapsed < 1.0, f"hfcls-eval --help took {elapsed:.2f} s"
