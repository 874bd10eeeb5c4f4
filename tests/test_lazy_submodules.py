"""``import jaxinit`` is light, and its submodules are found without their own import."""

import subprocess
import sys

import jaxinit

SUBMODULES = ("flax", "port", "testing")


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_dir_lists_the_public_names_and_the_submodules_only():
    assert dir(jaxinit) == sorted([*jaxinit.__all__, *SUBMODULES])


def test_import_jaxinit_loads_no_submodule_flax_nor_torch():
    _run(
        "import sys, jaxinit\n"
        "loaded = [m for m in ('flax', 'torch', 'jaxinit.flax', 'jaxinit.port', "
        "'jaxinit.testing') if m in sys.modules]\n"
        "assert not loaded, f'import jaxinit imported {loaded}'\n"
    )


def test_each_submodule_is_an_attribute_loaded_on_first_use():
    _run(
        "import sys, jaxinit\n"
        "for name in ('port', 'testing', 'flax'):\n"
        "    assert f'jaxinit.{name}' not in sys.modules, name\n"
        "    module = getattr(jaxinit, name)\n"
        "    assert module is sys.modules[f'jaxinit.{name}'], (name, module)\n"
        "    assert name in dir(jaxinit)\n"
        "assert callable(jaxinit.port.from_torch) and callable(jaxinit.testing.assert_follows)\n"
        "assert 'torch' not in sys.modules, 'jaxinit.port imported torch before it was needed'\n"
        "try:\n"
        "    jaxinit.portt\n"
        "except AttributeError as e:\n"
        "    assert str(e) == \"module 'jaxinit' has no attribute 'portt'\", e\n"
        "else:\n"
        "    raise AssertionError('jaxinit.portt did not raise AttributeError')\n"
    )
