"""Outcome types (issue 13): configuration and validation of binary and count outcomes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from trialstats.cli import main
from trialstats.config import load_config, workflow_config_file
from trialstats.data.validate import load_trial


def _binary(trial_files, labels=None):
    rng = np.random.default_rng(3)
    for month in (0, 12):
        values = rng.integers(0, 2, len(trial_files.patients))
        trial_files.patients[f"score_m{month}"] = (
            values if labels is None else [labels[v] for v in values]
        )
    entry = trial_files.config["outcomes"][0]
    entry.pop("range")
    entry.update(type="binary", mcid={"scale": "risk-difference", "value": 0.05})
    if labels is not None:
        entry["labels"] = list(labels)
    return values


def _rejected(trial_files, capsys, *fragments):
    status = main(["validate", "--config", str(trial_files.write())])
    err = capsys.readouterr().err
    assert status == 2
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


def test_binary_zero_one_is_accepted(trial_files):
    values = _binary(trial_files)
    trial = load_trial(load_config(trial_files.write()))
    assert trial.patients["score_m12"].tolist() == values.astype(float).tolist()
    assert trial.notes == ()


def test_binary_labels_are_coded_with_the_second_as_event(trial_files):
    values = _binary(trial_files, labels=("no", "yes"))
    trial = load_trial(load_config(trial_files.write()))
    assert trial.patients["score_m12"].tolist() == values.astype(float).tolist()


def test_unquoted_yes_no_labels_are_read_as_written(trial_files):
    """YAML 1.1 reads plain no/yes as booleans; as labels (and as the intervention label)
    they are the words in the data, and Snakemake's own reading of the file is still accepted."""
    values = _binary(trial_files, labels=("no", "yes"))
    trial_files.practices["arm"] = trial_files.practices["arm"].map(
        {trial_files.config["design"]["intervention"]: "yes"}).fillna("no")
    trial_files.config["design"]["intervention"] = "yes"
    path = trial_files.write()
    text = path.read_text().replace("'no'", "no").replace("'yes'", "yes")
    assert "- no\n" in text and "intervention: yes" in text
    path.write_text(text)
    config = load_config(path)
    assert config["outcomes"][0]["labels"] == ["no", "yes"]
    assert config["design"]["intervention"] == "yes"
    trial = load_trial(config)
    assert trial.patients["score_m12"].tolist() == values.astype(float).tolist()
    held = yaml.safe_load(text)  # what Snakemake holds: booleans
    assert held["outcomes"][0]["labels"] == [False, True]
    assert workflow_config_file([str(path)], [str(path)], {}, held) == path


def test_binary_other_value_is_rejected(trial_files, capsys):
    _binary(trial_files)
    trial_files.patients.loc[4, "score_m12"] = 2
    _rejected(trial_files, capsys, "score_m12", "'2'", "row 6", "binary outcome 'score'",
              "labels")


def test_binary_unknown_label_is_rejected(trial_files, capsys):
    _binary(trial_files, labels=("no", "yes"))
    trial_files.patients.loc[3, "score_m0"] = "maybe"
    _rejected(trial_files, capsys, "score_m0", "'maybe'", "row 5", "['no', 'yes']")


def test_count_must_be_whole_and_non_negative(trial_files, capsys):
    entry = trial_files.config["outcomes"][0]
    entry.pop("range")
    entry.update(type="count", mcid={"scale": "rate-ratio", "value": 1.25})
    trial_files.patients["score_m0"] = 2.0
    trial_files.patients["score_m12"] = 3.0
    trial_files.patients.loc[2, "score_m12"] = 1.5
    trial_files.patients.loc[7, "score_m12"] = -1
    _rejected(trial_files, capsys, "score_m12", "'1.5'", "'-1.0'", "rows 4, 9", "whole numbers")


def test_count_exposure_must_be_positive(trial_files, capsys):
    entry = trial_files.config["outcomes"][0]
    entry.pop("range")
    entry.update(type="count", exposure="months", mcid={"scale": "rate-ratio", "value": 1.2})
    trial_files.patients["score_m0"] = 2
    trial_files.patients["score_m12"] = 1
    trial_files.patients["months"] = 12.0
    trial_files.patients.loc[5, "months"] = 0
    _rejected(trial_files, capsys, "column 'months'", "positive", "row 7")
    trial_files.patients = trial_files.patients.drop(columns="months")
    _rejected(trial_files, capsys, "required column 'months' not found")


def test_zero_one_continuous_outcome_gets_a_named_warning(trial_files, capsys):
    for month in (0, 12):
        trial_files.patients[f"score_m{month}"] = np.arange(len(trial_files.patients)) % 2
    assert main(["validate", "--config", str(trial_files.write())]) == 0
    out = capsys.readouterr().out
    assert "outcome 'score' holds only 0 and 1" in out and "type: binary" in out


@pytest.mark.parametrize(("edit", "fragment"), [
    ({"type": "binary", "mcid": {"scale": "standardised", "value": 0.2}},
     "mcid.scale 'standardised' does not fit a binary outcome"),
    ({"mcid": {"scale": "odds-ratio", "value": 1.5}},
     "mcid.scale 'odds-ratio' does not fit a continuous outcome"),
    ({"type": "count", "mcid": {"scale": "risk-ratio", "value": 1.5}}, "use rate-ratio"),
    ({"type": "binary", "mcid": {"scale": "odds-ratio", "value": 1}}, "must differ from 1"),
    ({"type": "binary", "mcid": {"scale": "risk-difference", "value": 5}}, "a proportion"),
    ({"labels": ["no", "yes"]}, "labels is for binary outcomes"),
    ({"type": "binary", "exposure": "months"}, "exposure is for count outcomes"),
    ({"type": "binary", "labels": ["a", "a"]}, "two different values"),
    ({"type": "ordinal"}, "outcomes[0].type"),
])
def test_outcome_keys_must_fit_the_type(trial_files, capsys, edit, fragment):
    entry = trial_files.config["outcomes"][0]
    if "type" in edit:
        entry.pop("range")
    entry.update(edit)
    _rejected(trial_files, capsys, fragment)
