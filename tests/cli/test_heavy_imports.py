"""hfcls.cli.heavy_imports: the collector off while a command imports the stack, what it made frozen, once."""

import gc
import subprocess
import sys

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
