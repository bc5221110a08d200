"""The scenario report: every embedded image decodes, and Chinese labels are drawn with a font that has them."""

from __future__ import annotations

import base64
import io
import re
import warnings

import matplotlib.image
import pandas as pd
import pytest

from dipsim.report.fonts import cjk_font, covers
from dipsim.report.plots import TEXT, figures
from dipsim.scenarios import ScenarioResults


@pytest.fixture(scope="module")
def results():
    """A hand-made result of three scenarios over four hospitals (one a TCM hospital), with special-case review."""
    rows = []
    for scenario, deltas in (("baseline", [0, 0, 0, 0]), ("中医加成 10%", [300, -100, -100, -100]),
                             ("特例单议", [-50, 150, -50, -50])):
        levels, kinds = ["三级甲等", "二级", "二级", "一级"], ["中医", "综合", "综合", "专科"]
        for h, (level, kind, delta) in enumerate(zip(levels, kinds, deltas)):
            rows.append({"scenario": scenario, "hospital_id": f"H{h}", "pool": "P", "level": level, "type": kind,
                         "points": 100.0, "cost": 1_200.0, "fund_payout": 1_000.0 + delta, "delta": float(delta),
                         "delta_pct": delta / 10})
    hospitals = pd.DataFrame(rows)
    summary = pd.DataFrame({"scenario": ["baseline", "中医加成 10%", "特例单议"], "winners": [0, 1, 1],
                            "losers": [0, 3, 3], "unchanged": [4, 0, 0], "moved": [0.0, 300.0, 150.0],
                            "fund_payout": [4_000.0] * 3, "tcm_hospital_share": [0.25, 0.325, 0.2375],
                            "review_applied": [0, 0, 3], "review_approved": [0.0, 0.0, 1.96],
                            "review_amount": [0.0, 0.0, 150.0]})
    pools = pd.DataFrame({"scenario": ["baseline", "中医加成 10%", "特例单议"], "pool": "P",
                          "point_value": [10.0, 10.0, 9.9]})
    by_level = hospitals.groupby(["scenario", "level"], as_index=False)[["fund_payout", "delta"]].sum()
    return ScenarioResults(hospitals=hospitals, pools=pools, summary=summary, by_level=by_level)


def test_chinese_labels_are_drawn_with_a_font_that_has_every_character(results):
    family, path = cjk_font()
    labels = "".join(v for v in TEXT["zh"].values()) + "中医加成特例单议三级甲等"
    assert covers(path, "".join(ch for ch in labels if ord(ch) > 0x2E80))  # every CJK character of the labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = figures(results, "zh")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing[:3]  # matplotlib warns for every glyph it cannot draw (a tofu box)
    assert set(images) == {"payout_change", "winners_losers", "payment_ratio", "point_value", "tcm_share", "review"}
    assert family in matplotlib.rcParams["font.family"]


def test_report_html_is_self_contained_and_every_image_decodes(results, tmp_path):
    from dipsim.report.html import write_report

    path = write_report(results, tmp_path / "report.html", "中医加成", "zh")
    text = path.read_text(encoding="utf-8")
    assert "情景比较报告：中医加成" in text and "src='http" not in text and "<link" not in text
    encoded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(encoded) == 6
    for data in encoded:
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    english = write_report(results, tmp_path / "report_en.html", "TCM bonus", "en").read_text(encoding="utf-8")
    assert "Scenario report: TCM bonus" in english and "Summary by scenario" in english
