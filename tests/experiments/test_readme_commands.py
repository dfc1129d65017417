"""Every command README.md and BUILD.md give for an experiment binary names flags the binary
defines, and for the binaries with presets, parses and passes their config checks
(`presets.check_common`, then the method's `check_config`), without running anything.

A README command that a later change breaks (a renamed flag or field, a new check) fails here,
in the fast suite, instead of in a user's terminal.
"""

import importlib
import re
import shlex

import pytest

from tests.conftest import ROOT
from thesis_jax.core import presets

# binary -> (preset file under experiments/configs, default preset, "module:check function")
BINARIES = {
    "experiments.dann": ("dann.py", "digits", "thesis_jax.dann.experiment:check_config"),
    "experiments.deepwarp": ("deepwarp.py", "eyes", "thesis_jax.deepwarp.experiment:check_config"),
    "experiments.n4fields": (
        "n4fields.py",
        "shapes",
        "thesis_jax.n4fields.experiment:check_config",
    ),
    "experiments.spiral": ("spiral.py", "digits", "thesis_jax.spiral.experiment:check_config"),
    "experiments.spiral_mcmc": (
        "spiral_mcmc.py",
        "default",
        "thesis_jax.spiral.mcmc_experiment:check_config",
    ),
}


DOCUMENTS = ("README.md", "BUILD.md")


def readme_commands() -> list[tuple[str, list[str]]]:
    """(binary, arguments) of every `python -m experiments.<binary> ...` of DOCUMENTS: the code
    lines (continuations joined, comments dropped) and the commands quoted whole in the prose;
    the brackets of optional arguments are dropped."""
    text = "\n".join((ROOT / name).read_text() for name in DOCUMENTS).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        code = re.match(r"\s*python -m (experiments\.\w+)(.*)", line)
        if code:
            found.append((code.group(1), code.group(2).split(" #")[0]))
        else:
            found += re.findall(r"`python -m (experiments\.\w+)([^`]*)`", line)
    return [
        (binary, [a.strip("[]") for a in shlex.split(arguments)]) for binary, arguments in found
    ]


COMMANDS = readme_commands()


def test_the_readme_has_commands_for_every_binary_it_documents():
    binaries = {binary for binary, _ in COMMANDS}
    assert binaries >= set(BINARIES) - {"experiments.spiral_mcmc"}
    assert binaries >= {"experiments.gaze", "experiments.edges", "experiments.paint"}
    assert len(COMMANDS) >= 35
    for binary, (preset_file, default, _) in BINARIES.items():  # the table follows the binaries
        source = (ROOT / (binary.replace(".", "/") + ".py")).read_text()
        assert f'default_preset="{default}"' in source and f'"{preset_file}"' in source, binary


def _defined_flags(binary: str) -> set[str]:
    """`--workdir` (presets.run defines it) and the binary's own `flags.DEFINE_*` names."""
    source = (ROOT / (binary.replace(".", "/") + ".py")).read_text()
    found = set(re.findall(r"flags\.DEFINE_\w+\(\s*\"(\w+)\"", source))
    return found | ({"workdir"} if binary in BINARIES else set())


@pytest.mark.parametrize(
    "binary, arguments", COMMANDS, ids=[" ".join([b, *a])[:90] for b, a in COMMANDS]
)
def test_readme_command_passes_the_binary_checks(binary, arguments, tmp_path):
    rest = arguments
    if binary in BINARIES:
        preset_file, default, check = BINARIES[binary]
        spec, overrides, rest = presets.split_config_args(arguments)
        config = presets.get_config(
            spec or default, ROOT / "experiments" / "configs" / preset_file, overrides
        )
        presets.check_common(config, tmp_path / "run")
        module, function = check.split(":")
        getattr(importlib.import_module(module), function)(config)
    names = {re.match(r"--(\w+)", a).group(1) for a in rest if a.startswith("--")}
    defined = _defined_flags(binary)
    unknown = {n for n in names if n not in defined and not (n[:2] == "no" and n[2:] in defined)}
    assert not unknown, f"{binary} defines no flag {sorted(unknown)}"
