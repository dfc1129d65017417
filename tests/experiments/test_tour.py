"""The tour's verdicts: does each section rank the methods as the thesis does?"""

import json
import re

import pytest

from experiments.tour import write_index
from experiments.tour_section import TourSection, ordering
from tests.experiments.binaries import one_device_env, run_module

TITLES = {"a": "A", "b": "B", "c": "C"}


def test_ordering_says_whether_the_thesis_ranking_holds():
    assert ordering({"a": 0.9, "b": 0.5, "c": 0.1}, ("a", "b", "c"), TITLES) == (
        "The thesis's ordering holds at this budget: A > B > C."
    )
    broken = ordering({"a": 0.4, "b": 0.5, "c": 0.1}, ("a", "b", "c"), TITLES)
    assert broken.startswith("The thesis's ordering (A > B > C) does not hold")
    assert "A 0.4 vs B 0.5" in broken and "--budget" in broken
    # errors rank the other way; a method the run left out is left out of the verdict
    errors = {"a": 0.0043, "c": 0.0161}
    assert "holds" in ordering(errors, ("a", "b", "c"), TITLES, lower_is_better=True)
    assert "A 0.0161 vs C 0.0043" in ordering(
        {"a": 0.0161, "c": 0.0043}, ("a", "c"), TITLES, lower_is_better=True
    )
    assert "does not hold" in ordering({"a": 0.5, "b": 0.5}, ("a", "b"), TITLES)  # a tie


def test_the_page_shows_each_sections_verdict(tmp_path):
    section = TourSection(
        title="X",
        summary="s",
        pictures=[],
        table_header=("m",),
        table_rows=[("a",)],
        ordering=ordering({"a": 1.0, "b": 0.0}, ("a", "b"), TITLES),
    )
    page = open(write_index(str(tmp_path), [(section, 12.0)])).read()
    assert "<b>The thesis&#x27;s ordering holds at this budget: A &gt; B.</b>" in page
    assert "ran in 12 s" in page


@pytest.mark.slow  # the whole tour at its default budget: about 9 minutes on 2 cores
def test_the_default_tour_reproduces_the_thesis_ordering_in_every_section(tmp_path):
    # as `make demo` runs it: one device (eight simulated ones make SPIRAL's section several
    # times slower)
    result = run_module(
        "experiments.tour", f"--workdir={tmp_path}", timeout=3600, env=one_device_env()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "index.html").read_text()
    verdicts = dict(
        zip(
            re.findall(r"<h2>([\w-]+)", page),
            re.findall(r"<p class='ordering'><b>([^<]+)</b>", page),
            strict=True,
        )
    )
    assert set(verdicts) == {"N4-Fields", "DeepWarp", "DANN", "SPIRAL"}
    for method in ("DeepWarp", "DANN", "SPIRAL"):
        assert "ordering holds" in verdicts[method], verdicts
    assert_n4_ranks_as_table_3i(tmp_path / "n4fields" / "results.json", page)
    # fig. 4.7: the lightness correction on coarse-to-fine warping beats coarse-to-fine warping,
    # which beats one scale, which beats the unchanged input
    warp = json.loads((tmp_path / "deepwarp" / "results.json").read_text())
    mse = [warp[name]["mse"] for name in ("cfw_lcm", "cfw", "ss", "identity")]
    assert mse == sorted(mse), warp


@pytest.mark.slow  # 2 to 5 minutes each on 2 cores; 12 runs
@pytest.mark.parametrize("cpus", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("section", ["n4fields", "deepwarp"])
def test_the_n4_and_deepwarp_sections_rank_alike_on_any_seed_and_thread_count(
    section, seed, cpus, tmp_path
):
    """The two sections whose numbers once depended on the machine (CNN-patch dying or not,
    issue 18) keep the thesis's ordering with XLA on one or two threads, for three seeds."""
    result = run_module(
        "experiments.tour",
        f"--workdir={tmp_path}",
        f"--methods={section}",
        f"--seed={seed}",
        timeout=1800,
        env=one_device_env(),
        cpus=cpus,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((tmp_path / section / "results.json").read_text())
    page = (tmp_path / "index.html").read_text()
    if section == "n4fields":
        assert_n4_ranks_as_table_3i(tmp_path / section / "results.json", page)
    else:  # fig. 4.7
        mse = [scores[name]["mse"] for name in ("cfw_lcm", "cfw", "ss", "identity")]
        assert mse == sorted(mse), scores
        assert "ordering holds" in page


def assert_n4_ranks_as_table_3i(results, page: str, committee: int = 1) -> None:
    """Table 3.I: N4-fields > CNN-patch > CNN-central. With one network per model (the default
    budget) N4-fields and CNN-patch are within seed and machine noise of each other (ahead in 11
    of 12 runs on 2-core machines), and the page says so; the thesis's committee of three ranks them
    (`test_three_networks_per_model_rank_the_n4_section_as_table_3i`)."""
    scores = {name: row["ods"] for name, row in json.loads(results.read_text()).items()}
    (section,) = [part for part in page.split("<section>") if "<h2>N4-Fields" in part]
    assert scores["patch"] > scores["central"] > 0.3, scores
    if committee > 1 or "ordering holds" in section:
        assert scores["n4"] > scores["patch"], scores
    else:
        assert "one network; the thesis averages a committee of three" in section
        assert scores["n4"] > scores["patch"] - 0.02, scores


@pytest.mark.slow  # about 13 minutes on 2 cores
def test_three_networks_per_model_rank_the_n4_section_as_table_3i(tmp_path):
    """`--budget=3`: the thesis's committee of three networks per model (sec. 3.3.3)."""
    result = run_module(
        "experiments.tour",
        f"--workdir={tmp_path}",
        "--methods=n4fields",
        "--budget=3",
        timeout=3600,
        env=one_device_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "index.html").read_text()
    assert "ordering holds" in page
    assert_n4_ranks_as_table_3i(tmp_path / "n4fields" / "results.json", page, committee=3)


def test_an_unknown_method_is_a_config_error(tmp_path):
    from experiments.tour import run_tour
    from thesis_jax.core import ConfigError

    with pytest.raises(ConfigError, match=r"unknown methods \['nope'\]; the tour has"):
        run_tour(str(tmp_path), ["nope"])
