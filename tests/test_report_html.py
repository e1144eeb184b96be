"""The HTML report's pieces that are pure functions: what a reader sees on a histogram."""

import re

from pytest_editeval.report.html import _histogram


def bars(svg: str) -> dict[str, int]:
    return {label: int(n) for label, n in re.findall(r"<title>([^<:]+): (\d+) rows</title>", svg)}


def axis_labels(svg: str) -> list[str]:
    return re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="middle">([\d.]+)</text>', svg)


def test_a_ten_point_scale_has_one_bar_per_point_labelled_under_it():
    svg = _histogram([0, 3, 3, 10], "O", 0, 10)
    assert bars(svg) == {str(p): {0: 1, 3: 2, 10: 1}.get(p, 0) for p in range(11)}
    assert axis_labels(svg) == [str(p) for p in range(11)]
    assert "(n=4)" in svg and ">2</text>" in svg  # the y axis runs to the largest count


def test_a_hundred_point_scale_labels_bin_edges_so_each_value_is_seen_in_its_range():
    # KRIS's scores are 0, 25, 50, 75, 100: a 25 is in 20..30, a 100 in the top bin, and the axis ends at 100.
    svg = _histogram([0, 25, 25, 50, 75, 100, 100, 100], "VC", 0, 100)
    counts = bars(svg)
    assert counts["20 to 30"] == 2 and counts["90 to 100"] == 3 and counts["0 to 10"] == 1
    assert counts["50 to 60"] == 1 and counts["70 to 80"] == 1 and sum(counts.values()) == 8
    assert axis_labels(svg) == ["0", "20", "40", "60", "80", "100"]


def test_no_values_no_chart():
    assert _histogram([], "KP", 0, 100) == ""
