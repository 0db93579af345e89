"""Notes as the log says them: one wording about many runs said in full a few times, then once
naming the others (the sidecars and reports keep every note)."""

from __future__ import annotations

from bids_fixedfx.notes import SAID_IN_FULL, Repeats, said_once


def test_one_wording_about_many_runs_is_said_a_few_times_then_names_the_others():
    """A copy of ds005 printed a hundred lines of "no desc-brain_mask", one per run."""
    texts = [f"sub-{i:02d}_task-x_run-1 has no desc-brain_mask; nilearn computes one from "
             f"sub-{i:02d}/func/sub-{i:02d}_task-x_run-1_bold.nii.gz" for i in range(1, 11)]
    lines = said_once([*texts, "Another note.", texts[0]])
    assert lines[:SAID_IN_FULL] == texts[:SAID_IN_FULL]
    assert lines[SAID_IN_FULL] == ("The same for 7 more: sub-04_task-x_run-1, sub-05_task-x_run-1, "
                                   "sub-06_task-x_run-1, sub-07_task-x_run-1, sub-08_task-x_run-1 and 2 others.")
    assert lines[SAID_IN_FULL + 1:] == ["Another note."]
    few = texts[:SAID_IN_FULL]
    assert said_once(few) == few  # a few are all said in full


def test_notes_said_one_at_a_time_are_said_a_few_times_then_named_at_the_end():
    texts = [f"sub-{i:02d}_task-x_run-1: 2 of its 60 volumes hold non-finite values" for i in range(1, 8)]
    repeats = Repeats()
    said = [text for text in [*texts, "Another note.", texts[0]] if repeats.say(text)]
    assert said == [*texts[:SAID_IN_FULL], "Another note."]
    assert repeats.rest() == ["The warning about sub-01_task-x_run-1 above holds for 4 more: sub-04_task-x_run-1, "
                              "sub-05_task-x_run-1, sub-06_task-x_run-1, sub-07_task-x_run-1."]
    few = Repeats()
    assert all(few.say(text) for text in texts[:SAID_IN_FULL]) and few.rest() == []
