"""The grounding check on LLM rephrasings. Real: the checker on answers from the demo knowledge
base; the "LLM rephrasings" are written here by hand (simulated), faithful ones and ones that
change a number, add a phone number, a day, a website or a name."""

from __future__ import annotations

import pytest

from inference.pipelines.grounding import check_grounding, numbers

HOURS_ZH = (
    "市场监督管理局办事大厅位于海港市人民路88号市民服务中心二楼，开放时间为周一至周五"
    "上午9:00-12:00，下午13:30-17:30，法定节假日休息。"
)
HOURS_EN = (
    "The bureau's service hall is on the 2nd floor of the Citizen Service Centre, 88 Renmin "
    "Road, Harbour City. It is open Monday to Friday, 9:00-12:00 and 13:30-17:30, and closed "
    "on public holidays."
)
LICENCE_EN = "Complete applications are approved within 3 working days, free of charge."
REFUND_ZH = "网络购买的商品，自收到商品之日起7日内可以无理由退货。"
FOOD_EN = "Whistle-blowers can receive a reward of up to 300,000 yuan."


@pytest.mark.parametrize(
    ("rephrased", "source"),
    [
        (
            "办事大厅在人民路88号市民服务中心2楼，周一到周五9:00到12:00、13:30到17:30开放。",
            HOURS_ZH,
        ),
        (
            "Visit us at 88 Renmin Road (Citizen Service Centre, second floor), Monday to "
            "Friday, 9:00-12:00 and 13:30-17:30.",
            HOURS_EN,
        ),
        ("If your papers are complete you get it in three working days at no cost.", LICENCE_EN),
        ("收到网购商品后七天内都能无理由退货。", REFUND_ZH),
        ("You may be rewarded with as much as 300000 yuan.", FOOD_EN),
    ],
)
def test_a_faithful_rephrasing_passes(rephrased: str, source: str) -> None:
    result = check_grounding(rephrased, source)
    assert result.ok, result.why


@pytest.mark.parametrize(
    ("rephrased", "source", "why"),
    [
        ("办事大厅周一到周五9:00到12:00、13:30到18:30开放。", HOURS_ZH, "18"),
        ("It takes 5 working days and is free.", LICENCE_EN, "5"),
        ("收到网购商品后十五天内都能无理由退货。", REFUND_ZH, "15"),
        ("Rewards go up to 500,000 yuan.", FOOD_EN, "500000"),
        ("Open Monday to Friday. Call 0571-88886666 for details.", HOURS_EN, "88886666"),
        ("办事大厅周一至周六开放。", HOURS_ZH, "weekdays"),
        ("Details at www.hcmsb.gov.cn, Monday to Friday.", HOURS_EN, "www.hcmsb.gov.cn"),
        ("Apply at the Harbour Licensing Office.", LICENCE_EN, "harbour licensing office"),
        ("", LICENCE_EN, "empty"),
    ],
)
def test_a_changed_or_invented_fact_fails(rephrased: str, source: str, why: str) -> None:
    result = check_grounding(rephrased, source)
    assert not result.ok
    assert why in result.why


def test_numbers_are_normalised() -> None:
    assert numbers("1,000元、一千元、两万元、09:30、3.5%") == {"1000", "20000", "9", "30", "3.5"}
    assert numbers("one day, ten hours, someone") == {"1", "10"}
