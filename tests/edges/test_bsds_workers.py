"""`evaluate_bsds` from scripts its spawned workers cannot re-run: read from stdin, or calling it
at the top level without `if __name__ == "__main__":`. It warns and scores in the calling process
instead of crashing with BrokenProcessPool."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from thesis_jax.edges import evaluate_bsds

    truth = np.zeros((30, 40), bool)
    truth[10, 5:35] = True
    maps = [truth.astype(float), np.roll(truth, 2, axis=0).astype(float)]
    scores = evaluate_bsds(maps, [[truth], [truth]], thresholds=3, workers=2, progress=False)
    f_scores = [round(float(row[3]), 6) for row in scores["per_image"]]
    print("ODS", round(scores["ods"], 6), "F", f_scores)
    """
)
EXPECTED = "ODS 0.5 F [1.0, 0.0]"  # the shifted line is outside the 0.0075 tolerance


def _python(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    options = dict(capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    return subprocess.run([sys.executable, *args], input=stdin, **options)


@pytest.mark.parametrize("source", ["stdin", "file without a main guard"])
def test_scripts_workers_cannot_rerun_are_scored_in_process(tmp_path, source):
    if source == "stdin":
        run = _python("-", stdin=SCRIPT)
        reason = "<stdin> is not a file"
    else:
        script = tmp_path / "score_edges.py"
        script.write_text(SCRIPT)
        run = _python(str(script))
        reason = f"top level of {script} (line 8)"
    assert run.returncode == 0, run.stderr[-3000:]
    assert EXPECTED in run.stdout
    assert "BrokenProcessPool" not in run.stderr
    assert "instead of 2 worker processes" in run.stderr and reason in run.stderr
    assert 'if __name__ == "__main__":' in run.stderr  # what to do


def test_spawn_obstacle_reads_the_main_guard(tmp_path):
    script = tmp_path / "guarded.py"
    script.write_text(
        textwrap.dedent(
            """
            from thesis_jax.edges import bsds

            print("top:", bsds.spawn_obstacle())

            def main():
                print("guarded:", bsds.spawn_obstacle())

            if __name__ == "__main__":
                main()
            """
        )
    )
    run = _python(str(script))
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    assert "outside `if __name__" in lines["top"] and "(line 4)" in lines["top"]
    assert lines["guarded"] == "None"
    # `python -c` and interactive sessions have no main script to re-run; a worker imports
    # the benchmark without JAX (fast to start)
    run = _python(
        "-c",
        "import sys; from thesis_jax.edges import bsds; "
        "print(bsds.spawn_obstacle(), 'jax' in sys.modules, 'matplotlib' in sys.modules)",
    )
    assert run.stdout.split() == ["None", "False", "False"], run.stderr
