"""Presets resolve, overrides apply with the field's type, and mistakes give clear errors."""

import glob
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from experiments.configs.common import set_loop
from thesis_jax import core
from thesis_jax.core import errors, presets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DANN_PRESETS = os.path.join(ROOT, "experiments", "configs", "dann.py")
PRESET_FILES = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py")))
PRESET_FILES = [p for p in PRESET_FILES if os.path.basename(p) not in ("__init__.py", "common.py")]


@pytest.mark.parametrize("path", PRESET_FILES, ids=os.path.basename)
def test_every_preset_has_the_common_fields(path):
    module = presets.load_preset_module(path)
    assert module.PRESETS
    for preset in module.PRESETS:
        config = presets.get_config(preset, path, {"num_steps": "5"})
        for field in presets.REQUIRED_FIELDS:
            assert field in config, (preset, field)
        if os.path.basename(path) != "spiral_mcmc.py":  # inference only: no train loop
            assert core.loop_options(config)["num_steps"] == 5
        assert config.num_steps == 5 and config.preset == preset


def test_name_and_path_forms_agree():
    by_name = presets.get_config("svhn_mnist", DANN_PRESETS)
    by_path = presets.get_config(f"{DANN_PRESETS}:svhn_mnist", "/nonexistent.py")
    assert by_name.to_dict() == by_path.to_dict()
    assert by_name.architecture == "svhn" and by_name.learning_rate.alpha == 0.0
    first = presets.get_config(DANN_PRESETS, "/nonexistent.py")
    assert first.preset == "digits"


def test_overrides_take_the_field_type():
    config = presets.get_config(
        "digits",
        DANN_PRESETS,
        {
            "batch_size": "32",
            "learning_rate.mu0": "0.5",
            "svm_retrain": "false",
            "methods": "('dann',)",
            "bsds_dir": "/data/bsds",
        },
    )
    assert config.batch_size == 32 and isinstance(config.batch_size, int)
    assert config.learning_rate.mu0 == 0.5
    assert config.svm_retrain is False
    assert tuple(config.methods) == ("dann",)
    assert config.bsds_dir == "/data/bsds"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(presets.ConfigError, match=r"unknown preset 'mnist_svhn'.*mnist_mnistm"):
        presets.get_config("mnist_svhn", DANN_PRESETS)


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(presets.ConfigError, match=r"unknown config field 'num_step'.*num_steps"):
        presets.get_config("digits", DANN_PRESETS, {"num_step": "5"})
    with pytest.raises(presets.ConfigError, match=r"unknown config field 'learning_rate.mu'"):
        presets.get_config("digits", DANN_PRESETS, {"learning_rate.mu": "5"})


def test_bad_value_names_the_field_and_type():
    with pytest.raises(presets.ConfigError, match=r"--config.num_steps='ten'.*int"):
        presets.get_config("digits", DANN_PRESETS, {"num_steps": "ten"})
    with pytest.raises(presets.ConfigError, match=r"svm_retrain.*bool"):
        presets.get_config("digits", DANN_PRESETS, {"svm_retrain": "maybe"})


def test_missing_preset_file():
    with pytest.raises(presets.ConfigError, match="does not exist"):
        presets.get_config("/no/such/file.py:x", DANN_PRESETS)


def test_split_config_args_accepts_both_flag_spellings():
    spec, overrides, rest = presets.split_config_args(
        ["--config", "digits", "--config.num_steps=5", "--config.seed", "3", "--workdir=/tmp/x"]
    )
    assert spec == "digits"
    assert overrides == {"num_steps": "5", "seed": "3"}
    assert rest == ["--workdir=/tmp/x"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=nope"], "unknown preset 'nope'"),
        (["--config.nope=1"], "unknown config field 'nope'"),
        (["--config.num_steps=x"], "does not parse as int"),
        (["--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
        # checked before any work (presets.check_common, then the method's check_config)
        (
            ["--config.num_steps=-5", "--config.batch_size=0"],
            "error: config.num_steps must be >= 1, got -5; config.batch_size must be >= 1, got 0",
        ),
        (["--config.batch_size=7"], "error: config.batch_size must be even (half source, half"),
        # the tests' 8 simulated devices: 3 source and 3 target images cannot be split
        (["--config.batch_size=6"], "error: half of config.batch_size is 3, which does not split"),
        (["--workdir={tmp}/a_file"], "error: --workdir {tmp}/a_file is a file; give a folder"),
    ],
)
def test_binary_reports_config_errors_without_a_traceback(args, message, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    args = [arg.format(tmp=tmp_path) for arg in args]
    if not any(arg.startswith("--workdir") for arg in args):
        args.append(f"--workdir={tmp_path / 'run'}")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.dann", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "config.json").exists()  # nothing started


def test_check_common_names_every_bad_count_and_the_workdir_is_made_after(tmp_path):
    config = presets.get_config("digits", DANN_PRESETS)
    presets.check_common(config, tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # nothing made before every check passed
    presets.make_workdir(tmp_path / "new" / "run")
    assert (tmp_path / "new" / "run").is_dir()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(presets.ConfigError, match="cannot make the folder"):
        presets.make_workdir(tmp_path / "a_file" / "run")
    bad = presets.get_config(
        "digits",
        DANN_PRESETS,
        {"num_steps": "0", "batch_size": "-1", "keep_checkpoints": "0", "eval_every": "-2"},
    )
    with pytest.raises(presets.ConfigError) as raised:
        presets.check_common(bad, tmp_path)
    assert str(raised.value) == (
        "config.num_steps must be >= 1, got 0; config.batch_size must be >= 1, got -1; "
        "config.keep_checkpoints must be >= 1, got 0; config.eval_every must be >= 0 (0: off), "
        "got -2"
    )


def test_zero_steps_only_evaluate_a_given_trained_model(tmp_path):
    """README's `--config.agent=mnist --config.num_steps=0` evaluates the shipped agent; without
    an agent, 0 steps is a mistake, and the message says what 0 is for."""
    spiral_presets = os.path.join(ROOT, "experiments", "configs", "spiral.py")
    given = presets.get_config("digits", spiral_presets, {"num_steps": "0", "agent": "mnist"})
    presets.check_common(given, tmp_path)  # no error
    alone = presets.get_config("digits", spiral_presets, {"num_steps": "0"})
    with pytest.raises(presets.ConfigError) as raised:
        presets.check_common(alone, tmp_path)
    assert str(raised.value) == (
        "config.num_steps must be >= 1, got 0 (0 evaluates a trained model: give config.agent)"
    )
    negative = presets.get_config("digits", spiral_presets, {"num_steps": "-1", "agent": "mnist"})
    with pytest.raises(presets.ConfigError, match=r"^config.num_steps must be >= 0, got -1$"):
        presets.check_common(negative, tmp_path)


def test_user_errors_leave_in_one_line_unless_debugging(monkeypatch, capsys):
    monkeypatch.delenv("THESIS_JAX_DEBUG", raising=False)
    cases = [
        (errors.ConfigError("bad value"), 2),
        (errors.CheckpointError("step 4 is damaged"), 1),
        (errors.NonFiniteLossError("nan at step 3"), 1),
        (FileNotFoundError("no dataset at /x"), 1),
    ]
    for error, code in cases:
        with pytest.raises(SystemExit) as exited, errors.one_line_errors():
            raise error
        assert exited.value.code == code
        assert capsys.readouterr().err == f"error: {error}\n"
    with pytest.raises(ValueError), errors.one_line_errors():  # a bug keeps its traceback
        raise ValueError("a bug")
    monkeypatch.setenv("THESIS_JAX_DEBUG", "1")
    with pytest.raises(errors.ConfigError), errors.one_line_errors():
        raise errors.ConfigError("bad value")


def test_claim_workdir_refuses_to_mix_two_configs(tmp_path):
    config = presets.get_config("digits", DANN_PRESETS)
    presets.claim_workdir(config, tmp_path)
    (tmp_path / "checkpoints").mkdir()  # the run started
    presets.claim_workdir(config, tmp_path)  # the same config resumes
    relogged = presets.get_config("digits", DANN_PRESETS, {"log_every": "7"})
    presets.claim_workdir(relogged, tmp_path)  # logging cadence may change
    shorter = presets.get_config("digits", DANN_PRESETS, {"num_steps": "100"})
    with pytest.raises(presets.ConfigError, match=r"num_steps: 2000 -> 100.*new --workdir"):
        presets.claim_workdir(shorter, tmp_path)
    # A binary may let a finished run train further, never shorter.
    with pytest.raises(presets.ConfigError, match=r"num_steps: 2000 -> 100"):
        presets.claim_workdir(shorter, tmp_path, may_grow=("num_steps",))
    longer = presets.get_config("digits", DANN_PRESETS, {"num_steps": "3000"})
    presets.claim_workdir(longer, tmp_path, may_grow=("num_steps",))
    assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 3000
    with pytest.raises(presets.ConfigError, match=r"num_steps: 3000 -> 2000"):
        presets.claim_workdir(config, tmp_path, may_grow=("num_steps",))


def test_a_workdir_with_only_its_config_is_taken_over_by_the_corrected_command(tmp_path):
    """A run that stopped before any work (here: a capture folder that does not exist) leaves
    only config.json; the user's corrected command must not be refused as "a different run"."""
    workdir = tmp_path / "run"
    deepwarp_presets = os.path.join(ROOT, "experiments", "configs", "deepwarp.py")
    wrong = presets.get_config("folder", deepwarp_presets, {"data_dir": str(tmp_path / "typo")})
    presets.claim_workdir(wrong, workdir)
    fixed = presets.get_config("folder", deepwarp_presets, {"data_dir": str(tmp_path / "caps")})
    presets.claim_workdir(fixed, workdir)
    assert json.loads((workdir / "config.json").read_text())["data_dir"].endswith("caps")
    (workdir / "metrics.jsonl").write_text("{}\n")  # once the run has written anything, it is one
    with pytest.raises(presets.ConfigError, match="holds a run with a different config"):
        presets.claim_workdir(wrong, workdir)


def test_binary_reports_a_missing_dataset_with_instructions(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.dann",
            "--config=svhn_mnist",
            f"--config.data_dir={tmp_path}",
            f"--workdir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "error: tfds dataset 'svhn_cropped'" in result.stderr
    assert "download_and_prepare" in result.stderr
    assert "Traceback" not in result.stderr


def test_set_loop_refuses_a_field_the_loop_does_not_read():
    config = ml_collections.ConfigDict({"num_steps": 1})
    set_loop(config, num_steps=10, log_every=5)
    assert (config.num_steps, config.log_every) == (10, 5)
    with pytest.raises(ValueError, match="eval_evry"):
        set_loop(config, eval_evry=5)
