"""Progress lines: the time left at the pace so far."""

from bids_fixedfx.progress import duration, remaining


def test_time_left_at_the_pace_so_far():
    assert remaining(1, 4, 30.0) == "; about 1 min 30 s left"
    assert remaining(3, 4, 3.0) == "; about 1 s left"
    assert remaining(4, 4, 10.0) == ""
    assert remaining(0, 4, 10.0) == ""


def test_durations_read_as_people_say_them():
    assert duration(45) == "45 s"
    assert duration(120) == "2 min"
    assert duration(130.4) == "2 min 10 s"
    assert duration(3900) == "1 h 5 min"
