"""Hospital names of the fictional region 示例市: city hospitals, county (县) hospitals, townships and districts."""

from __future__ import annotations

import numpy as np

TERTIARY_NAMES = ["示例市第一人民医院", "示例市中医院", "示例医科大学附属医院", "示例市妇幼保健院", "示例市中心医院",
                  "示例市第二人民医院", "示例市第三人民医院", "示例市肿瘤医院", "示例市第四人民医院", "示例市儿童医院"]
COUNTIES = ["青山", "平川", "临河", "石门", "清源", "长宁", "丰乐", "东林", "西坪", "南岭", "安平", "永和", "兴隆",
            "云溪", "桃源", "松阳", "柳江", "白沙", "金水", "玉泉", "宁远", "乐平", "新安", "凤台"]
DISTRICTS = ["城东区", "城西区", "城南区", "城北区", "高新区", "开发区"]
TOWN_FIRST = list("大小东西南北上下新老高黄白石红金马龙凤三双沙河李张王杨")
TOWN_SECOND = list("庄集桥店湾坪铺岭塘口坝山溪河园营寨圩埠")
KIND_SUFFIX = {"general": "人民医院", "tcm": "中医院", "maternal": "妇幼保健院", "children": "儿童医院",
               "oncology": "肿瘤医院"}
ORDINALS = ["", "第二", "第三", "第四", "第五"]


def tertiary_name(i: int) -> str:
    """The i-th city hospital; past the list, further 院区 of the same hospitals."""
    name = TERTIARY_NAMES[i % len(TERTIARY_NAMES)]
    if i >= len(TERTIARY_NAMES):
        name = name.replace("示例市", f"示例市第{i // len(TERTIARY_NAMES) + 1}院区")
    return name


def county_name(c: int) -> str:
    return COUNTIES[c % len(COUNTIES)] + ("县" if c < len(COUNTIES) else f"{c // len(COUNTIES) + 1}县")


def county_hospital_name(county: str, kind: str, k: int) -> str:
    """The k-th (from 0) hospital of this kind in the county: 人民医院, 第二人民医院, ..."""
    prefix = ORDINALS[k] if k < len(ORDINALS) else f"第{k + 1}"
    return county + prefix + KIND_SUFFIX[kind]


def town_names(n: int) -> list[str]:
    names = [a + b for a in TOWN_FIRST for b in TOWN_SECOND]
    order = np.random.default_rng(12345).permutation(len(names))  # a fixed, region-independent shuffle
    out = [names[i] for i in order]
    while len(out) < n:
        out += [f"{names[i]}{len(out) // len(names) + 1}" for i in order]
    return out[:n]


def grassroots_name(i: int, town: str, township: bool) -> str:
    return f"{town}镇卫生院" if township else f"{DISTRICTS[i % len(DISTRICTS)]}{town}街道社区卫生服务中心"
