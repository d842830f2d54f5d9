"""Box attention integration used by the synthetic acceptance check."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.train.synthetic_check import box_mass, box_share


def test_uniform_map_gives_the_box_share() -> None:
    att = np.full((7, 7), 1 / 49)
    for box in ([0.1, 0.2, 0.5, 0.9], [0.0, 0.0, 1.0, 1.0], [0.33, 0.41, 0.34, 0.99]):
        assert box_mass(att, box) == pytest.approx(box_share(box))


def test_point_mass_inside_partly_inside_and_outside() -> None:
    att = np.zeros((7, 7))
    att[1, 2] = 1.0  # row 1 = y in [1/7, 2/7), column 2 = x in [2/7, 3/7)
    assert box_mass(att, [2 / 7, 1 / 7, 3 / 7, 2 / 7]) == pytest.approx(1.0)
    assert box_mass(att, [2.5 / 7, 1 / 7, 1.0, 1.0]) == pytest.approx(0.5)  # half the cell's width
    assert box_mass(att, [0.5, 0.5, 1.0, 1.0]) == 0.0
    assert box_mass(att * 3, [2 / 7, 1 / 7, 3 / 7, 2 / 7]) == pytest.approx(1.0)  # normalised


def test_share_and_empty_map() -> None:
    assert box_share([0.25, 0.5, 0.75, 1.0]) == pytest.approx(0.25)
    assert box_share([0.5, 0.5, 0.4, 0.9]) == 0.0
    assert box_mass(np.zeros((7, 7)), [0, 0, 1, 1]) == 0.0


def test_distinct_figures_count_captions_references_and_contents() -> None:
    from medcap.train.synthetic_check import content_key, distinct_figures

    nodule = {"finding": "nodule", "location": "left upper zone", "size": "small", "box": [0, 0, 1, 1]}
    large = {**nodule, "size": "large"}
    mass = {**nodule, "finding": "mass"}
    contents = [content_key("XR", [nodule]), content_key("XR", [nodule]), content_key("XR", [large]),
                content_key("CT", [nodule]), content_key("XR", [mass, nodule]), content_key("XR", [nodule, mass])]
    assert contents[4] == contents[5] == ("XR", (("mass", "left upper zone", "small"),
                                                  ("nodule", "left upper zone", "small")))
    figures = distinct_figures(["a", "a", "b", "c", "d", "d"], ["r1", "r2", "r3", "r4", "r5", "r5"], contents)
    assert figures == {"distinct_captions": 4 / 6, "distinct_references": 5 / 6, "distinct_contents": 4 / 6}
    with pytest.raises(ValueError, match="2 captions, 1 references"):
        distinct_figures(["a", "b"], ["r"], contents[:2])
