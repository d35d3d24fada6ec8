"""`hallpass contracts publish`: one page per contract for the district's website, with what
the contractor receives in plain words and the Parents' Bill of Rights supplement (121.3)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import load_contracts, resolve_allowances
from streams.policy.pages import contract_page, field_words

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
CATALOG = field_catalog(load_schema("student_record_changed"))
WORDS = field_words(load_schema("student_record_changed"))


def test_every_contract_gets_a_page_with_its_fields_and_its_supplement(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "contracts",
            "publish",
            "--contracts",
            str(CONTRACTS),
            "--out",
            str(tmp_path),
            "--district",
            "Example CSD",
        ],
    )
    assert result.exit_code == 0, result.output
    contracts = load_contracts(CONTRACTS, CATALOG)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["index.html", *(f"{c.partner}.html" for c in contracts)]
    )
    index = (tmp_path / "index.html").read_text()
    for contract in contracts:
        page = (tmp_path / f"{contract.partner}.html").read_text()
        assert contract.partner + ".html" in index
        assert "Example CSD" in page and f"version {contract.version})" in page
        for path in resolve_allowances(contract, CATALOG):
            assert f'<span title="{path}">{WORDS[path]}</span>' in page or (
                f">{WORDS[path]}</span>" in page  # two fields with the same words, said once
            )
        assert "section 2-d" in page and "NY-Ed-Law-2-d" not in page
        assert " 01, " not in page  # days without a leading zero
        assert contract.bill_of_rights is not None
        for _key, answer in contract.bill_of_rights.answers:
            assert answer.replace("'", "&#x27;") in page
        for info in CATALOG.values():
            if info.never_share:
                assert f'title="{info.path}"' not in page


def test_carewell_says_its_data_needs_written_consent(tmp_path: Path) -> None:
    [carewell] = [c for c in load_contracts(CONTRACTS, CATALOG) if c.partner == "carewell-health"]
    page = contract_page(carewell, CATALOG, "Example CSD", "2026-11-30")
    assert "medical and health information" in page
    assert "only with your signed, dated written consent" in page
    assert "a code made for this contractor" in page


def test_every_value_is_escaped() -> None:
    [learnwell] = [c for c in load_contracts(CONTRACTS, CATALOG) if c.partner == "learnwell"]
    hostile = dataclasses.replace(
        learnwell, display_name="<script>alert(1)</script>", purpose="a & b <i>"
    )
    page = contract_page(hostile, CATALOG, "<b>CSD</b>", "2026-11-30")
    assert "<script>" not in page and "<i>" not in page and "<b>CSD" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b" in page


def test_an_unwritable_out_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        main,
        ["contracts", "publish", "--contracts", str(CONTRACTS), "--out", str(blocker / "pages")],
    )
    assert result.exit_code == 1 and "--out" in result.output
    assert "Traceback" not in result.output


def test_fields_are_said_in_a_parents_words() -> None:
    """The page names fields as a parent reads them, from the schema's documentation without
    its notes on source systems and examples, not as paths of the record."""
    assert WORDS["names.first_name"] == "Legal first name"
    assert WORDS["demographics.birth_date"] == "Date of birth"
    assert WORDS["names.generation_suffix"] == "Generation suffix"
    assert WORDS["enrollment.enrollment_status"] == "Enrollment status"
    assert WORDS["demographics.asian"] == "Asian"  # documented only by its OneRoster name
    for said in WORDS.values():
        assert said[:1].isupper() and "OneRoster" not in said and "Ed-Fi" not in said, said
        assert "_" not in said and "e.g" not in said, said
