"""Which interchange a file is, and of which Ed-Fi Data Standard: read from its root element.

An Ed-Fi XML interchange names its Data Standard in the namespace of its root element
(``http://ed-fi.org/5.0.0``, ``http://ed-fi.org/4.0.0``) and its kind in the root's name
(``InterchangeStudentAttendance``). Data Standards 4.x and 5.x are read; older ones (2.x,
3.x: ``http://ed-fi.org/0220``, ``http://ed-fi.org/3.2.0``...) and any other namespace are
refused with the reason.

Each kind feeds sections of the event (:data:`SECTIONS`): a section whose interchange is not
part of a load stays null ("not part of this change", so the processor keeps what it knew),
and so does a section whose file could not be read to the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Data Standard majors this connector reads.
SUPPORTED_MAJORS: Final[frozenset[int]] = frozenset({4, 5})

_EDFI_NAMESPACE = re.compile(r"http://ed-fi\.org/(?P<version>\d+(?:\.\d+)*|0\d{3})")

#: Root element -> interchange kind (Data Standard 4 names its contacts "Parent").
KINDS: Final[dict[str, str]] = {
    "InterchangeEducationOrganization": "EducationOrganization",
    "InterchangeMasterSchedule": "MasterSchedule",
    "InterchangeAssessmentMetadata": "AssessmentMetadata",
    "InterchangeStudent": "Student",
    "InterchangeContact": "Contact",
    "InterchangeParent": "Contact",
    "InterchangeStudentEnrollment": "StudentEnrollment",
    "InterchangeStudentAttendance": "StudentAttendance",
    "InterchangeStudentDiscipline": "StudentDiscipline",
    "InterchangeStudentProgram": "StudentProgram",
    "InterchangeStudentAssessment": "StudentAssessment",
    "InterchangeStudentGrade": "StudentGrade",
    "InterchangeStudentTranscript": "StudentTranscript",
}

#: The order files are read in: what others refer to first (schools, students, contacts).
READ_ORDER: Final[tuple[str, ...]] = (
    "EducationOrganization",
    "MasterSchedule",
    "AssessmentMetadata",
    "Student",
    "Contact",
    "StudentEnrollment",
    "StudentAttendance",
    "StudentDiscipline",
    "StudentProgram",
    "StudentAssessment",
    "StudentGrade",
    "StudentTranscript",
)

#: Event sections each kind fills.
SECTIONS: Final[dict[str, frozenset[str]]] = {
    "EducationOrganization": frozenset(),
    "MasterSchedule": frozenset(),
    "AssessmentMetadata": frozenset(),
    "Student": frozenset({"names", "identity", "demographics"}),
    "Contact": frozenset({"guardians"}),
    "StudentEnrollment": frozenset(
        {"enrollment", "demographics", "contact", "schedule", "special"}
    ),
    "StudentAttendance": frozenset({"attendance"}),
    "StudentDiscipline": frozenset({"conduct"}),
    "StudentProgram": frozenset({"programs", "special"}),
    "StudentAssessment": frozenset({"assessment"}),
    "StudentGrade": frozenset({"transcript"}),
    "StudentTranscript": frozenset({"transcript"}),
}

#: Sections a reference file feeds indirectly (names of schools, assessments, courses).
LOOKUPS: Final[dict[str, frozenset[str]]] = {
    "EducationOrganization": frozenset({"enrollment"}),
    "MasterSchedule": frozenset({"schedule", "transcript"}),
    "AssessmentMetadata": frozenset({"assessment"}),
}


class NotAnInterchange(ValueError):
    """The root element is not an Ed-Fi interchange this connector reads; says why."""


@dataclass(frozen=True)
class Interchange:
    kind: str | None  # None: an Ed-Fi interchange this connector does not map
    root: str
    namespace: str
    version: str


def identify(root: str, namespace: str) -> Interchange:
    """The interchange of a root element, or :class:`NotAnInterchange` with the reason."""
    match = _EDFI_NAMESPACE.fullmatch(namespace.rstrip("/"))
    if match is None:
        raise NotAnInterchange(
            f"namespace {namespace or '(none)'!r} is not an Ed-Fi Data Standard namespace "
            "(expected http://ed-fi.org/<version>, e.g. http://ed-fi.org/5.0.0)"
        )
    version = match.group("version")
    major = int(version[:2]) if version.startswith("0") else int(version.split(".")[0])
    if major not in SUPPORTED_MAJORS:
        raise NotAnInterchange(
            f"Ed-Fi Data Standard {version} is not supported (4.x and 5.x are): export the "
            "interchanges from a current ODS/API"
        )
    if not root.startswith("Interchange"):
        raise NotAnInterchange(f"root element {root} is not an Ed-Fi interchange")
    return Interchange(KINDS.get(root), root, namespace, version)
