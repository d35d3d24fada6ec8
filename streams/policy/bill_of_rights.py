"""The Parents' Bill of Rights supplemental information of a contract (8 NYCRR 121.3(c)).

New York's Education Law 2-d requires each contract with a third-party contractor that
receives student data to carry supplemental information for the district's Parents' Bill of
Rights, published on the district's website. A contract that lists ``NY-Ed-Law-2-d`` among
its laws must carry it as ``bill_of_rights`` with one plain-language answer per item of
121.3(c):

======================  ============================================================
key                     what it answers
======================  ============================================================
exclusive_purposes      the exclusive purposes for which the data will be used
subcontractors          how the contractor holds subcontractors to the same terms
duration                when the agreement expires
at_expiry               what happens to the data then (returned, destroyed, how)
challenge_accuracy      how a parent, student or teacher challenges the data's accuracy
storage                 where the data is stored (and the security protections taken)
encryption              how the data is encrypted in motion and at rest
======================  ============================================================

Pure: parsing and checking only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: the law whose contracts need the supplement
ED_LAW_2D = "NY-Ed-Law-2-d"
#: key -> the question of 121.3(c) it answers (the published page's headings)
ITEMS: Mapping[str, str] = {
    "exclusive_purposes": "The exclusive purposes for which the student data will be used",
    "subcontractors": "How the contractor ensures that subcontractors abide by the same data "
    "protection and security requirements",
    "duration": "When the agreement expires",
    "at_expiry": "What happens to the student data when the agreement expires",
    "challenge_accuracy": "How a parent, student or teacher may challenge the accuracy of the data",
    "storage": "Where the student data will be stored, and the security protections taken",
    "encryption": "How the data is encrypted, in motion and at rest",
}
_MIN_ANSWER = 20  # characters: an answer, not a placeholder


@dataclass(frozen=True, slots=True)
class BillOfRights:
    """The 121.3(c) answers of one contract, in :data:`ITEMS` order."""

    answers: tuple[tuple[str, str], ...]

    def answer(self, key: str) -> str:
        return dict(self.answers)[key]


def parse_bill_of_rights(
    value: object, laws: tuple[str, ...] | None, error: Callable[[str, str], None]
) -> BillOfRights | None:
    """The ``bill_of_rights`` section of a contract; ``error(key, reason)`` reports each
    problem (a contract under :data:`ED_LAW_2D` without it is one)."""
    required = laws is not None and ED_LAW_2D in laws
    if value is None:
        if required:
            error(
                "bill_of_rights",
                f"required for a contract under {ED_LAW_2D} (8 NYCRR "
                f"121.3): answer {', '.join(ITEMS)} in plain language for the district's "
                "Parents' Bill of Rights",
            )
        return None
    if not isinstance(value, Mapping):
        error(
            "bill_of_rights", f"must be a mapping of {', '.join(ITEMS)} to plain-language answers"
        )
        return None
    ok = True
    for key in sorted(str(k) for k in value if k not in ITEMS):
        error(f"bill_of_rights.{key}", f"unknown item (the items: {', '.join(ITEMS)})")
        ok = False
    answers: list[tuple[str, str]] = []
    for key, question in ITEMS.items():
        text = value.get(key)
        if not isinstance(text, str) or len(" ".join(text.split())) < _MIN_ANSWER:
            error(
                f"bill_of_rights.{key}",
                f"missing or too short: answer '{question}' in at least {_MIN_ANSWER} characters",
            )
            ok = False
            continue
        answers.append((key, " ".join(text.split())))
    return BillOfRights(tuple(answers)) if ok else None
