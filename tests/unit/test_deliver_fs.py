"""Writing kernel folders on disk: replaced in place, logos kept in step, others' left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from condaops.reconciler.deliver.fs import DeliveryError, write_unit
from condaops.reconciler.deliver.model import KERNEL_NAME_TAKEN, KernelUnit
from condaops.reconciler.model import EnvRef

REF = EnvRef("ds", "tools")


def spec(build: int) -> bytes:
    data = {
        "argv": ["python"],
        "display_name": "tools (ds)",
        "metadata": {"condaops": {"environment": str(REF), "build": build}},
    }
    return json.dumps(data).encode()


def logos(folder: Path, **files: str) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tuple(folder / name for name in files)


def test_a_rewritten_kernel_gets_every_new_logo_and_loses_the_ones_gone(tmp_path: Path) -> None:
    target = tmp_path / "kernels" / "condaops-ds-tools"
    first = logos(tmp_path / "b1", **{"logo-32x32.png": "a", "logo-64x64.png": "b", "logo-svg.svg": "c"})
    assert write_unit(KernelUnit(target, spec(1), first), REF)
    assert sorted(p.name for p in target.iterdir()) == [
        "kernel.json",
        "logo-32x32.png",
        "logo-64x64.png",
        "logo-svg.svg",
    ]
    second = logos(tmp_path / "b2", **{"logo-32x32.png": "A", "logo-64x64.png": "B"})
    assert write_unit(KernelUnit(target, spec(2), second), REF)
    assert sorted(p.name for p in target.iterdir()) == ["kernel.json", "logo-32x32.png", "logo-64x64.png"]
    assert [(target / n).read_text() for n in ("logo-32x32.png", "logo-64x64.png")] == ["A", "B"]
    assert json.loads((target / "kernel.json").read_text())["metadata"]["condaops"]["build"] == 2
    assert not write_unit(KernelUnit(target, spec(2), second), REF)  # nothing changed: nothing written
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_kernel_of_someone_else_is_not_touched(tmp_path: Path) -> None:
    target = tmp_path / "condaops-ds-tools"
    target.mkdir()
    (target / "kernel.json").write_text('{"argv": ["python"], "display_name": "Theirs"}')
    (target / "logo-svg.svg").write_text("theirs")
    with pytest.raises(DeliveryError) as caught:
        write_unit(KernelUnit(target, spec(1), ()), REF)
    assert caught.value.reason == KERNEL_NAME_TAKEN
    assert (target / "logo-svg.svg").read_text() == "theirs"
