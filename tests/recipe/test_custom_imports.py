"""custom_imports: a module that fails to import is one line naming it."""

import pytest

from hfcls.errors import HfclsError
from hfcls.recipe.load import load_recipe

from conftest import write


@pytest.mark.parametrize(
    "module, source, message",
    [
        (
            "raises_at_import",
            "x = 1\nraise RuntimeError('no GPU found')\n",
            r"importing raises_at_import raised RuntimeError: no GPU found \(.*raises_at_import\.py, line 2\); "
            "fix that module",
        ),
        (
            "broken_syntax",
            "def f(:\n    pass\n",
            r"importing broken_syntax raised SyntaxError: .*broken_syntax\.py, line 1",
        ),
        ("exits", "import sys\nsys.exit(3)\n", None),
    ],
)
def test_custom_imports_that_fail_are_one_line(tmp_path, monkeypatch, based, module, source, message):
    write(tmp_path / f"{module}.py", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    if message is None:  # SystemExit is not an error of the module's code: it stops, as the module asked
        with pytest.raises(SystemExit):
            load_recipe(based, [f"custom_imports=[{module}]"])
        return
    with pytest.raises(HfclsError, match=message) as error:
        load_recipe(based, [f"custom_imports=[{module}]"])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("names", ["[3]", "[null]", "['']"])
def test_custom_imports_must_be_module_names(based, names):
    with pytest.raises(HfclsError, match="custom_imports must list module names"):
        load_recipe(based, [f"custom_imports={names}"])
