"""Allocation: constrained randomisation against cvcrand, sequential methods, the CLI.

Reference values: ``tests/fixtures/allocation`` made by
``tests/fixtures/r/make_allocation_fixtures.R`` (cvcrand 0.1.1, the Dickinson et al. 2015
example of its documentation: 16 counties, 8 treated, cutoff 0.1, seed 12345).
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.allocation.balance import (
    balance_scores,
    balance_table,
    covariate_matrix,
    levels,
    practice_table,
)
from trialstats.allocation.constrained import (
    accepted_indices,
    constrained_randomisation,
    enumerate_allocations,
    n_treated_for,
    over_constraint,
    pair_coallocation,
    sample_allocations,
)
from trialstats.allocation.sequential import (
    minimisation,
    minimisation_factors,
    permuted_blocks,
    simple_randomisation,
)
from trialstats.cli import main
from trialstats.data.io import read_table
from trialstats.errors import TrialstatsError

FIXTURES = Path(__file__).parent / "fixtures" / "allocation"
COVARIATES = ["location", "inciis", "uptodateonimmunizations", "hispanic", "incomecat"]
CATEGORICAL = ["location", "incomecat"]
RUNS = {"l2": ("l2", None), "l1": ("l1", None), "weights": ("l2", [1000, 1, 1, 1, 1])}
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def design() -> pd.DataFrame:
    path = FIXTURES / "design.csv"
    return practice_table(read_table(path), path, id_column="county", columns=COVARIATES,
                          categorical=CATEGORICAL)


@pytest.fixture(scope="module")
def r_scores() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "scores.csv.gz")


@pytest.fixture(scope="module")
def space() -> np.ndarray:
    return enumerate_allocations(16, 8)


def _scores(design, run, space):
    metric, weights = RUNS[run]
    z, _ = covariate_matrix(design, COVARIATES, CATEGORICAL, weights)
    return balance_scores(space, z, metric)


@pytest.mark.parametrize("run", RUNS)
def test_every_balance_score_equals_cvcrand(design, r_scores, space, run):
    # same enumeration order (combn) and the same score for each of the 12,870 allocations
    assert len(space) == REFERENCE["runs"][run]["n_allocations"] == 12870
    np.testing.assert_allclose(_scores(design, run, space), r_scores[run], rtol=1e-13)


@pytest.mark.parametrize("run", RUNS)
def test_accepted_set_and_cutoff_equal_cvcrand(design, space, run):
    scores = _scores(design, run, space)
    keep = accepted_indices(scores, cutoff=0.1)
    reference = REFERENCE["runs"][run]
    assert len(keep) == reference["n_accepted"] == 1287
    assert scores[keep[-1]] == pytest.approx(reference["cutoff_score"], rel=1e-13)
    assert round(scores[keep[-1]], 3) == reference["cutoff_score_rounded"]
    theirs = pd.read_csv(FIXTURES / f"accepted_{run}.csv").iloc[:, 1:].to_numpy(dtype=bool)
    assert {row.tobytes() for row in space[keep]} == {row.tobytes() for row in theirs}
    pairs = pair_coallocation(space[keep], [str(i) for i in range(1, 17)])
    assert pairs["n_same_arm"].tolist() == reference["pairs_same_arm_count"]


@pytest.mark.parametrize("run", RUNS)
def test_selected_scheme_score_equals_cvcrand(design, space, run):
    scores = _scores(design, run, space)
    selected = np.array(REFERENCE["runs"][run]["selected_allocation"], dtype=bool)
    (row,) = np.flatnonzero((space == selected).all(axis=1))
    assert round(scores[row], 3) == REFERENCE["runs"][run]["selected_score_rounded"]


def test_documented_example_numbers(design):
    # cvcrand's vignette: 12,870 schemes, cut-off score 7.638, selected scheme 2.684
    z, names = covariate_matrix(design, COVARIATES, CATEGORICAL)
    assert names == ["location[Urban]", "inciis", "uptodateonimmunizations", "hispanic",
                     "incomecat[Low]", "incomecat[Med]"]
    result = constrained_randomisation(z, 8, cutoff=0.1, seed=12345)
    assert (len(result.scores), len(result.accepted)) == (12870, 1287)
    assert round(result.cutoff_score, 3) == 7.638
    assert result.score <= result.cutoff_score


def test_l2_score_is_the_scaled_sum_of_standardised_mean_differences():
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(9, 3)) * [1, 10, 100], columns=["a", "b", "c"])
    weights = [1.0, 2.0, 0.5]
    z, _ = covariate_matrix(x, ["a", "b", "c"], weights=weights)
    space = enumerate_allocations(9, 4)
    expected = []
    for treated in space:
        diff = x[treated].mean() - x[~treated].mean()
        std = np.asarray(weights) * diff / x.std(ddof=1)
        expected.append(((4 * 5 / 9) * std).pow(2).sum())
    np.testing.assert_allclose(balance_scores(space, z, "l2"), expected, rtol=1e-12)


def test_enumeration_is_combn_order_and_complete():
    space = enumerate_allocations(6, 3)
    expected = [[j in c for j in range(6)] for c in combinations(range(6), 3)]
    assert space.tolist() == expected


def test_thirty_practices_are_refused_with_sampling_offered():
    with pytest.raises(TrialstatsError, match=r"155,117,520 .*--sample N"):
        enumerate_allocations(30, 15)


def test_sampling_is_without_replacement_seeded_and_uniform():
    a = sample_allocations(30, 15, 500, np.random.default_rng(1))
    b = sample_allocations(30, 15, 500, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert (a.sum(axis=1) == 15).all()
    assert len(np.unique(np.packbits(a, axis=1), axis=0)) == 500
    everything = sample_allocations(6, 3, 20, np.random.default_rng(2))
    assert {r.tobytes() for r in everything} == {r.tobytes() for r in enumerate_allocations(6, 3)}
    # uniform: each of 20 allocations is drawn first equally often (chi-square, 19 df)
    firsts = [sample_allocations(6, 3, 1, np.random.default_rng(s))[0] for s in range(4000)]
    codes = [int("".join("1" if v else "0" for v in f), 2) for f in firsts]
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 20
    assert ((counts - 200) ** 2 / 200).sum() < 43.8  # 0.999 quantile of chi-square(19)


def test_acceptance_rounds_half_to_even_and_top_n():
    scores = np.array([5.0, 1.0, 4.0, 1.0, 3.0])
    assert accepted_indices(scores, top=3).tolist() == [1, 3, 4]
    assert len(accepted_indices(np.arange(25.0), cutoff=0.1)) == 2  # round(2.5) = 2, as R
    with pytest.raises(TrialstatsError, match="either"):
        accepted_indices(scores, cutoff=0.5, top=2)
    with pytest.raises(TrialstatsError, match="fixed allocation"):
        accepted_indices(scores, cutoff=0.1)


def test_pair_coallocation_and_over_constraint():
    x = pd.DataFrame({"size": [0.0, 0.0, 10.0, 10.0, 5.0, 5.0]})
    z, _ = covariate_matrix(x, ["size"])
    space = enumerate_allocations(6, 3)
    scores = balance_scores(space, z)
    accepted = space[scores < 1e-12]  # arm sums equal: one of each pair 0/0, 10/10, 5/5
    pairs = pair_coallocation(accepted, list("abcdef"))
    for row in pairs.itertuples():
        i, j = "abcdef".index(row.practice_1), "abcdef".index(row.practice_2)
        assert row.n_same_arm == int(np.sum(accepted[:, i] == accepted[:, j]))
    never = pairs[pairs["fraction_same_arm"] == 0]
    assert sorted(zip(never["practice_1"], never["practice_2"], strict=True)) == [
        ("a", "b"), ("c", "d"), ("e", "f")]
    warnings = over_constraint(pairs, len(accepted))
    assert any("never in the same arm" in w and "a-b" in w for w in warnings)
    assert any("cannot give a p-value below" in w for w in warnings)


def test_categorical_levels_sort_like_r_factors():
    assert levels(pd.Series(["10", "2", "1", "2"])) == ["1", "2", "10"]
    assert levels(pd.Series(["Med", "Low", "High"])) == ["High", "Low", "Med"]


def test_balance_table_standardised_differences():
    practices = pd.DataFrame({"size": [1.0, 2.0, 3.0, 5.0], "area": ["u", "r", "u", "u"]})
    table = balance_table(practices, np.array([1, 1, 0, 0]), ["size", "area"], ["area"])
    size = table[table["covariate"] == "size"].iloc[0]
    assert size["standardised_difference"] == pytest.approx(
        (1.5 - 4.0) / math.sqrt((0.5 + 2.0) / 2))
    urban = table[(table["covariate"] == "area") & (table["level"] == "u")].iloc[0]
    assert (urban["intervention"], urban["control"]) == (0.5, 1.0)
    assert urban["standardised_difference"] == pytest.approx(-0.5 / math.sqrt(0.125))


def test_ratio_sets_the_arm_sizes():
    assert n_treated_for(16, 1) == 8
    assert n_treated_for(15, 1) == 7
    assert n_treated_for(15, 2) == 10
    with pytest.raises(TrialstatsError):
        n_treated_for(3, 100)


def test_minimisation_without_random_element_keeps_every_margin_balanced():
    rng = np.random.default_rng(5)
    practices = pd.DataFrame({"area": rng.choice(["u", "r"], 40),
                              "size": rng.normal(size=40)})
    factors = minimisation_factors(practices, ["area", "size"], ["area"])
    arms = minimisation(factors, 1.0, np.random.default_rng(1), probability=1.0)
    for column in factors:
        for level in factors[column].unique():
            at = (factors[column] == level).to_numpy()
            assert abs(arms[at].sum() - (1 - arms[at]).sum()) <= 2
    again = minimisation(factors, 1.0, np.random.default_rng(1), probability=1.0)
    assert np.array_equal(arms, again)


def test_minimisation_first_steps_by_hand():
    factors = pd.DataFrame({"f": ["a", "a", "b", "a"]})
    # probability 1: practice 2 must join the other arm than practice 1 (level a);
    # practice 3 (level b) is a tie; practice 4 (level a) then ties again at 1:1
    arms = minimisation(factors, 1.0, np.random.default_rng(0), probability=1.0)
    assert arms[0] != arms[1]


def test_permuted_blocks_balance_every_complete_block():
    strata = pd.Series(["x"] * 12 + ["y"] * 7)
    arms = permuted_blocks(strata, 2.0, np.random.default_rng(4))  # blocks of 4 + 2
    x = arms[:12]
    assert x[:6].sum() == 4 and x[6:].sum() == 4
    assert arms[12:18].sum() == 4


def test_simple_randomisation_probability():
    arms = simple_randomisation(20000, 3.0, np.random.default_rng(8))
    assert arms.mean() == pytest.approx(0.75, abs=0.01)


# --- the command ----------------------------------------------------------------------------

def _run(tmp_path, *extra, practices=None):
    practices = practices or FIXTURES / "design.csv"
    return main(["allocate", "--practices", str(practices), "--id", "county",
                 "--balance", ",".join(COVARIATES), "--categorical", ",".join(CATEGORICAL),
                 "--out", str(tmp_path), *extra])


def test_cli_writes_every_output_reproducibly(tmp_path):
    assert _run(tmp_path / "a") == 0
    assert _run(tmp_path / "b") == 0
    names = ["allocation.csv", "balance.csv", "summary.json", "accepted.csv", "pairs.csv",
             "scores.svg", "scores.png", "scores.csv"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (summary["n_allocations"], summary["n_accepted"], summary["cutoff"]) == (
        12870, 1287, 0.1)
    assert round(summary["cutoff_score"], 3) == 7.638
    allocation = pd.read_csv(tmp_path / "a" / "allocation.csv")
    assert list(allocation.columns) == ["county", "arm"]
    assert (allocation["arm"] == "intervention").sum() == 8
    accepted = pd.read_csv(tmp_path / "a" / "accepted.csv")
    assert list(accepted.columns) == [*map(str, range(1, 17)), "score"]
    drawn = (allocation["arm"] == "intervention").to_numpy().astype(int)
    matches = (accepted.iloc[:, :16].to_numpy() == drawn).all(axis=1)
    assert matches.sum() == 1
    assert accepted["score"][matches].iloc[0] == pytest.approx(summary["score"])


def test_cli_sequential_methods(tmp_path):
    for method in ("minimisation", "simple", "stratified"):
        extra = ["--method", method]
        args = ["allocate", "--practices", str(FIXTURES / "design.csv"), "--id", "county",
                "--out", str(tmp_path / method), *extra]
        if method == "minimisation":
            args += ["--balance", "location,inciis", "--categorical", "location"]
        if method == "stratified":
            args += ["--strata", "location"]
        assert main(args) == 0
        allocation = pd.read_csv(tmp_path / method / "allocation.csv")
        assert set(allocation["arm"]) <= {"intervention", "control"}
        assert not (tmp_path / method / "accepted.csv").exists()
    stratified = pd.read_csv(tmp_path / "stratified" / "allocation.csv")
    location = pd.read_csv(FIXTURES / "design.csv")["location"]
    assert (stratified["arm"][location == "Rural"] == "intervention").sum() == 4


def test_cli_thirty_practices_refused_then_sampled(tmp_path, capsys):
    practices = tmp_path / "p.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"county": range(30), "inciis": rng.normal(size=30),
                  "location": rng.choice(["u", "r"], 30)}).to_csv(practices, index=False)
    args = ["allocate", "--practices", str(practices), "--id", "county", "--balance",
            "inciis,location", "--categorical", "location", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "--sample N" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args, "--sample", "2000", "--top", "100"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (summary["n_allocations"], summary["n_accepted"]) == (2000, 100)
    assert summary["enumerated"] is False


def test_cli_bad_input_names_file_row_and_column(tmp_path, capsys):
    practices = tmp_path / "p.csv"
    text = (FIXTURES / "design.csv").read_text().splitlines()
    text[3] = text[3].replace(",85,", ",eighty,", 1)
    practices.write_text("\n".join(text) + "\n")
    assert _run(tmp_path / "o", practices=practices) == 2
    err = capsys.readouterr().err
    assert "p.csv, column 'inciis'" in err and "row 4" in err and "'eighty'" in err
    assert not (tmp_path / "o").exists()
    assert main(["allocate", "--practices", str(FIXTURES / "design.csv"), "--id", "county",
                 "--balance", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "'nope' not found" in capsys.readouterr().err
    assert main(["allocate", "--practices", str(FIXTURES / "design.csv"), "--id", "county",
                 "--method", "simple", "--cutoff", "0.2", "--out", str(tmp_path / "o")]) == 2
    assert "--cutoff applies to --method constrained only" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
