"""Named presets and command-line overrides for every experiment binary.

A method's presets live in one Python file (`experiments/configs/<method>.py`) that defines
`PRESETS` (a tuple of names) and `get_config(preset) -> ml_collections.ConfigDict`. On the
command line:

    --config=NAME                 a preset of the binary's own preset file
    --config=path/to/file.py:NAME a preset of any preset file (`path.py` alone: its first preset)
    --config.field=value          override a field (dotted for nested fields)

Unknown presets, unknown fields and values that do not parse as the field's type raise
`ConfigError` with the valid choices in the message. Every preset carries at least `seed`,
`num_steps`, `batch_size` and `data_dir`, so any run can be shortened the same way.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

from thesis_jax.core.errors import ConfigError, one_line_errors

REQUIRED_FIELDS = ("seed", "num_steps", "batch_size", "data_dir")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def load_preset_module(path: str | os.PathLike) -> ModuleType:
    """Imports a preset file by path; it must define `PRESETS` and `get_config`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset file {str(path)!r} does not exist")
    name = f"_thesis_jax_presets_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import preset file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config") or not hasattr(module, "PRESETS"):
        raise ConfigError(f"preset file {str(path)!r} must define PRESETS and get_config(preset)")
    return module


def get_config(
    spec: str, default_file: str | os.PathLike, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
    """Resolves `NAME` or `file.py[:NAME]` to a ConfigDict and applies `overrides`.

    Args:
      spec: a preset name of `default_file`, or `path.py:NAME`, or `path.py`.
      default_file: the preset file that bare names refer to.
      overrides: dotted field names to values (already typed, or strings to parse).
    """
    if spec.endswith(".py"):
        file, preset = spec, ""
    elif ".py:" in spec:
        file, preset = spec.rsplit(":", 1)
    else:
        file, preset = str(default_file), spec
    module = load_preset_module(file)
    presets = tuple(module.PRESETS)
    preset = preset or presets[0]
    if preset not in presets:
        raise ConfigError(
            f"unknown preset {preset!r} in {file}; valid presets: {', '.join(presets)}"
        )
    config = module.get_config(preset)
    missing = [f for f in REQUIRED_FIELDS if f not in config]
    if missing:
        raise ConfigError(f"preset {preset!r} of {file} lacks required fields {missing}")
    config.unlock()
    config.preset = preset
    apply_overrides(config, overrides or {})
    config.lock()
    return config


def _field_names(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    names = []
    for key, value in config.items():
        names.append(prefix + key)
        if isinstance(value, ml_collections.ConfigDict):
            names.extend(_field_names(value, prefix + key + "."))
    return names


def _parse_value(text: str, current: Any, field: str) -> Any:
    """Parses a command-line string as the type of the field it replaces."""
    try:
        if isinstance(current, bool):
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, str):
            return text
        if isinstance(current, (tuple, list)):
            value = ast.literal_eval(text)
            if not isinstance(value, (tuple, list)):
                value = (value,)
            return type(current)(value)
        if current is None:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return None if text.lower() == "none" else text
    except (ValueError, SyntaxError) as e:
        raise ConfigError(
            f"--config.{field}={text!r} does not parse as {type(current).__name__}: {e}"
        ) from None
    raise ConfigError(f"--config.{field} cannot be set from the command line")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Sets dotted fields in place; unknown fields raise ConfigError listing the valid ones."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for name in parents:
            if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
                node = None
                break
            node = node[name]
        if node is None or leaf not in node:
            raise ConfigError(
                f"unknown config field {dotted!r}; valid fields: {', '.join(_field_names(config))}"
            )
        current = node[leaf]
        if isinstance(value, str) and not isinstance(current, str):
            value = _parse_value(value, current, dotted)
        try:
            node[leaf] = value
        except TypeError as e:
            raise ConfigError(f"--config.{dotted}: {e}") from None


def claim_workdir(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    may_differ: Sequence[str] = ("log_every", "eval_every", "checkpoint_every"),
    may_grow: Sequence[str] = (),
) -> None:
    """Records `config` in `workdir/config.json`, or checks that the run there used the same.

    Resuming a run with a different config would silently mix two experiments (a finished
    2000-step run "resumed" with `num_steps=100` would report the 2000-step model), so any
    difference outside `may_differ` raises ConfigError naming the fields; a field in `may_grow`
    (e.g. "num_steps": train a finished run further) may only increase. A workdir that holds
    nothing but config.json is no run: its attempt stopped before any work (a missing dataset,
    a bad path), so the corrected command takes the folder over.
    """
    import json

    from thesis_jax.core.metrics import is_main_process, write_atomic

    path = Path(workdir) / "config.json"
    current = json.loads(config.to_json_best_effort())
    started = path.exists() and any(p.name != "config.json" for p in Path(workdir).iterdir())
    if started:
        previous = json.loads(path.read_text())
        changed = sorted(
            key
            for key in set(previous) | set(current)
            if key not in may_differ
            and previous.get(key) != current.get(key)
            and not (key in may_grow and _grows(previous.get(key), current.get(key)))
        )
        if changed:
            diff = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise ConfigError(
                f"{workdir} holds a run with a different config ({diff}). Resume it with the "
                "same flags, pass a new --workdir, or delete the folder to start over."
            )
    if is_main_process():
        write_atomic(path, json.dumps(current, indent=2, sort_keys=True))


def _grows(before: object, after: object) -> bool:
    numbers = (int, float)
    return isinstance(before, numbers) and isinstance(after, numbers) and after > before


# Fields every binary's loop reads (when the preset has them): counts that must be positive,
# and intervals where 0 means "off" or "at the end only".
POSITIVE_FIELDS = ("num_steps", "batch_size", "eval_batch_size", "keep_checkpoints")
INTERVAL_FIELDS = ("log_every", "eval_every", "checkpoint_every", "sample_every")


# A config that names a trained model to start from (SPIRAL's `agent`) may run 0 steps: it
# then only evaluates that model (core.train with num_steps=0).
STARTING_MODEL = "agent"


def _count_problem(config: ml_collections.ConfigDict, name: str) -> str | None:
    value = config.get(name)
    can_evaluate = name == "num_steps" and STARTING_MODEL in config
    lowest = 0 if can_evaluate and config[STARTING_MODEL] else 1
    if not isinstance(value, int) or value >= lowest:
        return None
    hint = f" (0 evaluates a trained model: give config.{STARTING_MODEL})" if can_evaluate else ""
    return f"config.{name} must be >= {lowest}, got {value}{hint if value == 0 else ''}"


def check_common(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
    """What every run needs before any work: positive counts (num_steps may be 0 when the
    config starts from a trained model: an evaluation), non-negative intervals, and a workdir
    that is not a file. Raises ConfigError with every problem found, one clause each."""
    problems = [p for name in POSITIVE_FIELDS if (p := _count_problem(config, name))]
    problems += [
        f"config.{name} must be >= 0 (0: off), got {config[name]}"
        for name in INTERVAL_FIELDS
        if isinstance(config.get(name), int) and config[name] < 0
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    if Path(workdir).exists() and not Path(workdir).is_dir():
        raise ConfigError(f"--workdir {workdir} is a file; give a folder (made if missing)")


def make_workdir(workdir: str | os.PathLike) -> None:
    """Creates the run's folder, or says in one line why it cannot be made."""
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--workdir {workdir}: cannot make the folder ({e.strerror})") from None


def split_config_args(argv: Sequence[str]) -> tuple[str | None, dict[str, str], list[str]]:
    """Separates `--config[=| ]SPEC` and `--config.field[=| ]VALUE` from the other flags."""
    spec, overrides, rest = None, {}, []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config" or arg.startswith("--config.") or arg.startswith("--config="):
            key, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 >= len(args):
                    raise ConfigError(f"{arg} needs a value")
                value = args[i + 1]
                i += 1
            if key == "config":
                spec = value
            else:
                overrides[key.removeprefix("config.")] = value
        else:
            rest.append(arg)
        i += 1
    return spec, overrides, rest


def run(
    main: Callable[[ml_collections.ConfigDict, str], Any],
    *,
    name: str,
    preset_file: str | os.PathLike,
    default_preset: str,
    report: str | None = "results.md",
    check: Callable[[ml_collections.ConfigDict], None] | None = None,
) -> None:
    """`absl.app.run` for an experiment binary: `--config` (module docstring) and `--workdir`.

    Initialises multi-host JAX when launched so, checks the config (`check_common`, then the
    method's `check`, which raises ConfigError; it may look at the devices), then calls
    `main(config, workdir)`; the workdir defaults to `runs/<name>/<preset>`. A `main` that
    returns anything but None (None: interrupted, or nothing to report) has written
    `workdir/report`, and the path is logged. User errors (`errors.UserError`: a bad config,
    a damaged checkpoint, a non-finite loss; a missing file) end the program with one line.
    """
    from absl import app, flags

    workdir_flag = flags.DEFINE_string(
        "workdir",
        None,
        f"Output folder: checkpoints, metrics, pictures (default: "
        f"runs/{name}/<preset>). Rerunning with the same workdir resumes.",
    )
    holder: dict[str, ml_collections.ConfigDict] = {}

    def parse(argv: list[str]) -> list[str]:
        try:
            spec, overrides, rest = split_config_args(argv[1:])
            holder["config"] = get_config(spec or default_preset, preset_file, overrides)
        except ConfigError as e:
            sys.stderr.write(f"error: {e}\n")
            sys.exit(2)
        try:
            return flags.FLAGS([argv[0], *rest])
        except flags.Error as e:
            sys.stderr.write(f"error: {e}\nPass --helpfull to see the flags.\n")
            sys.exit(2)

    def run_main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
        import logging

        from thesis_jax.core import parallel

        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # backend probing

        parallel.initialize_distributed()  # before anything touches a JAX backend
        config = holder["config"]
        workdir = workdir_flag.value or os.path.join("runs", name, config.preset)
        with one_line_errors():  # bad config, missing data, damaged checkpoints, a NaN loss
            check_common(config, workdir)
            if check is not None:
                check(config)
            make_workdir(workdir)  # only once the config is known to be good
            result = main(config, workdir)
        if report and result is not None:
            from absl import logging as absl_logging

            absl_logging.info("report: %s", os.path.join(workdir, report))

    app.run(run_main, flags_parser=parse)
