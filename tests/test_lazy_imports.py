"""Importing the package, or running one command, imports only the modalities it needs.

``gpu_genomics`` resolves its public names on first use (PEP 562) and ``gpu-genomics`` imports a
command's module only when that command is looked up, so ``gpu-genomics vcf`` does not pay for
the single-cell code. Each check runs in a fresh interpreter, as a user's command does.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

import gpu_genomics as gg
from gpu_genomics import cli

MODALITIES = ("data", "expression", "intervals", "report", "sequence", "variants")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return what it stored in ``out``, plus ``loaded``:
    the modality subpackages (``intervals``, ...) then in ``sys.modules``, and ``numpy``."""
    script = (
        "import contextlib, io, json, sys\n"
        "out = {}\n"
        f"{code}\n"
        f"out['loaded'] = [m for m in {MODALITIES!r} if 'gpu_genomics.' + m in sys.modules]\n"
        "out['numpy'] = 'numpy' in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_package_imports_no_modality():
    code = (
        "import gpu_genomics as gg\n"
        "out['at_import'] = [m for m in sys.modules if m.startswith('gpu_genomics.')]\n"
        "out['numpy_at_import'] = 'numpy' in sys.modules\n"
        "out['all'] = set(gg.__all__) <= set(dir(gg))\n"
        "out['one_hot'] = gg.one_hot(['ACGT'], 4, device='cpu').shape\n"
        "out['cached'] = 'one_hot' in vars(gg)\n"
    )
    out = loaded_after(code)
    assert out["at_import"] == ["gpu_genomics._lazy"]  # the PEP 562 helper (importlib only)
    assert not out["numpy_at_import"]
    assert out["all"]  # dir() lists every public name before any is loaded
    assert out["one_hot"] == [1, 4, 4]
    assert out["cached"]  # a name is resolved once, then read as a plain global
    assert out["loaded"] == ["sequence"]  # one_hot loaded its modality, and only it


def test_a_public_name_from_a_modality_loads_on_first_use():
    out = loaded_after(
        "import gpu_genomics as gg\n"
        "out['read_vcf'] = gg.read_vcf.__module__\n"
        "out['genotypes'] = gg.genotypes.__name__\n"
    )
    assert out["read_vcf"] == "gpu_genomics.variants.reader"
    assert out["genotypes"] == "gpu_genomics.variants.genotypes"
    assert "variants" in out["loaded"] and "expression" not in out["loaded"]


def test_listing_the_commands_imports_none_of_them():
    out = loaded_after(
        "from gpu_genomics.cli import cli\n"
        "out['names'] = sorted(cli.commands)\n"
        "out['has_vcf'] = 'vcf' in cli.commands and 'nosuch' not in cli.commands\n"
        "out['modules'] = [m for m in sys.modules if m.startswith('gpu_genomics.cli.')]\n"
    )
    assert out["names"] == sorted(cli.COMMAND_MODULES)
    assert out["has_vcf"]
    assert out["modules"] == []  # no command's module
    assert out["loaded"] == []


#: command -> the modalities its ``--help`` (and so its run, up to the job) must not import
NOT_IMPORTED = {
    "info": MODALITIES,
    "encode": ("data", "expression", "intervals", "variants"),
    "intervals": ("data", "expression", "variants"),
    "vcf": ("data", "expression"),
    "variant-windows": ("data", "expression"),
    "bulk": ("data", "intervals", "sequence", "variants"),
    "scrna": ("data", "intervals", "sequence", "variants"),
    "downsample": ("data", "intervals", "sequence", "variants"),
    "doublets": ("data", "intervals", "sequence", "variants"),
}


@pytest.mark.parametrize("name", sorted(NOT_IMPORTED))
def test_a_command_imports_only_the_modalities_it_needs(name):
    out = loaded_after(
        "from gpu_genomics.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as help_text:\n"
        f"    main([{name!r}, '--help'])\n"
        "out['help'] = help_text.getvalue()\n"
        "out['modules'] = [m for m in sys.modules if m.startswith('gpu_genomics.cli.')]\n"
    )
    assert out["help"].startswith(f"Usage: gpu-genomics {name} ")
    assert not set(out["loaded"]) & set(NOT_IMPORTED[name]), out["loaded"]
    module = cli.COMMAND_MODULES[name][0]
    others = {f"gpu_genomics.cli.{m}" for m, _ in cli.COMMAND_MODULES.values()} - {
        f"gpu_genomics.cli.{module}"
    }
    assert not others & set(out["modules"]), out["modules"]  # no other command's module


def test_the_vcf_command_does_not_import_intervals():
    out = loaded_after(
        "from gpu_genomics.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['vcf', '--help'])\n"
    )
    assert "intervals" not in out["loaded"], out["loaded"]


def test_every_public_name_resolves_to_its_module_attribute():
    import importlib

    for name in gg.__all__:
        value = getattr(gg, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        module, attribute = gg._LAZY[name]
        source = importlib.import_module(f"gpu_genomics.{module}")
        assert value is (source if attribute is None else getattr(source, attribute)), name
    assert set(gg._LAZY) == set(gg.__all__) - {"__version__"}  # nothing lazy left unexported
    assert set(gg.__all__) <= set(dir(gg))
    assert gg.sc.__name__ == "gpu_genomics.sc" and gg.intervals.__name__ == "gpu_genomics.intervals"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = gg.nope


def test_help_lists_every_command(capsys):
    cli.main(["--help"])
    text = capsys.readouterr().out
    listed = [line.split()[0] for line in text.split("Commands:\n", 1)[1].splitlines() if line]
    assert listed == list(cli.COMMAND_MODULES) == sorted(cli.COMMAND_MODULES)
    with click.Context(cli.cli) as ctx:
        assert cli.cli.list_commands(ctx) == listed
        for name in listed:  # each table entry names a command of that name
            command = cli.cli.get_command(ctx, name)
            assert isinstance(command, click.Command) and command.name == name
        assert cli.cli.get_command(ctx, "nosuch") is None
