"""Every policy parameter says where its rule comes from, in words a user of the package can follow.

A registry entry's `source` names a public document (a document number such as 医保发〔2025〕18号, a title in 《》, or a
city whose rule it follows) or says plainly that the default is an example value. The domain notes the code cites ship
with the project as docs/domain.md; every "docs/domain.md §N" under dipsim/ must name a section that exists there, and
nothing may cite the project's internal DOMAIN.md, which users do not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dipsim
from dipsim.policy import PARAMETERS

PACKAGE = Path(dipsim.__file__).resolve().parent
DOMAIN_NOTES = PACKAGE.parent / "docs" / "domain.md"
# Cities, counties and corps whose rules the sources cite by name (docs/domain.md §1 lists them).
PLACES = ("宁德", "漳州", "黄石", "莒南", "兵团", "庆阳", "梅州", "厦门", "自贡", "连云港", "浙江", "金华")
DOCUMENT_MARKERS = ("〔", "号", "《", *PLACES)
CITATION = re.compile(r"docs/domain\.md (§\d+(?:-\d+)?(?:, §\d+(?:-\d+)?)*)")


def package_texts() -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in sorted(PACKAGE.rglob("*"))
            if path.suffix in (".py", ".toml") and path.is_file()}


def cited_sections(text: str) -> list[int]:
    """Section numbers a text cites: "docs/domain.md §2, §7-12" cites 2 and 7 to 12."""
    numbers = []
    for match in CITATION.finditer(text):
        for part in match.group(1).split(", "):
            first, _, last = part.removeprefix("§").partition("-")
            numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


@pytest.mark.parametrize("path", sorted(PARAMETERS))
def test_source_names_a_public_document_or_says_example_value(path):
    source = PARAMETERS[path].source.strip()
    assert source, f"{path}: no source"
    assert "DOMAIN.md" not in source, f"{path}: cites DOMAIN.md, which users of the package do not have"
    assert source.startswith("example value") or any(marker in source for marker in DOCUMENT_MARKERS), (
        f"{path}: source names no public document and does not say it is an example value: {source!r}")


def test_example_values_say_why():
    # "example value (no public source): <why this default>": the reason must be there, not just the label.
    for path, parameter in PARAMETERS.items():
        if parameter.source.startswith("example value"):
            assert re.match(r"example value \(no public source\): \S", parameter.source), (path, parameter.source)


def test_nothing_in_the_package_cites_the_internal_domain_document():
    citing = [str(path.relative_to(PACKAGE)) for path, text in package_texts().items() if "DOMAIN.md" in text]
    assert citing == []


def test_domain_notes_ship_with_the_project():
    assert DOMAIN_NOTES.is_file(), f"{DOMAIN_NOTES} is missing"
    sections = re.findall(r"^## (\d+)\. \S", DOMAIN_NOTES.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert [int(number) for number in sections] == list(range(1, len(sections) + 1)), "sections numbered 1, 2, ..."


def test_every_cited_section_exists():
    sections = {int(number) for number in
                re.findall(r"^## (\d+)\. ", DOMAIN_NOTES.read_text(encoding="utf-8"), flags=re.MULTILINE)}
    cited = {path: cited_sections(text) for path, text in package_texts().items()}
    assert sum(len(numbers) for numbers in cited.values()) >= 50, "the code and the registry cite the notes"
    missing = {str(path.relative_to(PACKAGE)): sorted(set(numbers) - sections)
               for path, numbers in cited.items() if set(numbers) - sections}
    assert missing == {}


def test_citation_parsing():
    assert cited_sections("see docs/domain.md §2, §7-9 and docs/domain.md §11.") == [2, 7, 8, 9, 11]
    assert cited_sections("DOMAIN.md §3") == []


CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("path", sorted(PARAMETERS))
def test_every_parameter_has_its_label_and_meaning_in_chinese_and_english(path):
    """The workbench's 政策参数 page shows each parameter in the user's language: `label` (Chinese) and `label_en`,
    `doc` (English) and `doc_zh` (Chinese), none empty, each in its language."""
    p = PARAMETERS[path]
    assert p.label.strip() and p.label_en.strip() and p.doc.strip() and p.doc_zh.strip(), path
    assert CJK.search(p.label) and CJK.search(p.doc_zh), path
    assert not CJK.search(p.label_en), path  # an English label, not the Chinese one copied
    assert p.label_en != p.path and p.doc_zh != p.doc, path
