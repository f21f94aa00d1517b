"""A built layer, unzipped as Lambda unzips it, imports and runs its native code on a CPython of the target's
version that sees nothing but the standard library and the layer."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from cdk_pip_layer.engine.options import Runtime
from layer_inspection import pyenv_python, run_isolated, unzip

from ._layers import NATIVE_REQUIREMENTS, LayerCache, LayerSpec

SCRIPT = """
import sys
layer = {layer!r}
import orjson, yaml, charset_normalizer, pydantic, pydantic_core, anyio
from cryptography.fernet import Fernet
from pydantic import BaseModel

class Item(BaseModel):
    name: str
    size: int

item = Item.model_validate({{"name": "layer", "size": "42"}})
assert item.size == 42, item
assert orjson.loads(orjson.dumps({{"a": [1, 2.5, None]}})) == {{"a": [1, 2.5, None]}}
assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {{"a": [1, 2]}}
assert str(charset_normalizer.from_bytes("héllo wörld".encode("utf-8")).best()) == "héllo wörld"
key = Fernet.generate_key()
assert Fernet(key).decrypt(Fernet(key).encrypt(b"secret")) == b"secret"

async def main():
    return 7
assert anyio.run(main) == 7

if sys.version_info < (3, 11):
    import exceptiongroup
    assert exceptiongroup.ExceptionGroup

import cryptography.hazmat.bindings._rust as rust, _cffi_backend, yaml._yaml as cyaml
native = [orjson.orjson, pydantic_core._pydantic_core, rust, _cffi_backend, cyaml]
for module in native + [pydantic, anyio]:
    assert module.__file__.startswith(layer), (module.__name__, module.__file__)
assert not any("site-packages" in p for p in sys.path), sys.path
print("ok", sys.version_info[:2])
"""


@pytest.mark.parametrize("runtime", ["python3.10", "python3.12", "python3.13"])
def test_layer_imports_on_the_target_interpreter(runtime: Runtime, layers: LayerCache, tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip(f"an x86_64 layer cannot load on this {platform.machine()} host")
    version = runtime.removeprefix("python")
    python = pyenv_python(version)
    if python is None:
        pytest.skip(f"no Python {version} in pyenv on this machine")
    layer = layers.get(LayerSpec(NATIVE_REQUIREMENTS, runtime, "x86_64"))
    site = unzip(layer.zip_path, tmp_path / "opt")
    done = run_isolated(python, SCRIPT.format(layer=str(site)), site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"ok {tuple(int(p) for p in version.split('.'))}"
