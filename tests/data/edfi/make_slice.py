"""Re-cut ``grand-bend/`` from the Ed-Fi Data Standard's Grand Bend sample (Apache-2.0).

    python tests/data/edfi/make_slice.py "<Ed-Fi-Standard>/Samples/Sample XML"

Keeps the records of the students in :data:`STUDENTS` (and what they refer to: their
contacts, incidents, schools, assessments), so the slice stays a few hundred kB.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

NS = "http://ed-fi.org/5.0.0"
STUDENTS = {
    "604821",
    "604837",
    "604872",
    "604908",
    "605231",
    "605262",
    "605370",
    "605387",
    "605417",
    "605551",
}
FILES = [
    "Student.xml",
    "StudentSchoolAttendance.xml",
    "StudentSectionAttendance-Tardy.xml",
    "StudentDiscipline.xml",
    "StudentProgram.xml",
    "Contact.xml",
    "EducationOrganization.xml",
    "AssessmentMetadata-StateAssessment.xml",
    "StudentAssessment-StateAssessment.xml",
    "AssessmentMetadata-ACT.xml",
    "StudentAssessment-ACT.xml",
]
OUT = Path(__file__).with_name("grand-bend")


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{p}" for p in path.split("/"))


def student_of(element: ET.Element) -> str | None:
    found = element.find(f".//{q('StudentUniqueId')}")
    return None if found is None or found.text is None else found.text.strip()


def main(source: Path) -> None:
    ET.register_namespace("", NS)
    contacts: set[str] = set()
    incidents: set[str] = set()
    tree = ET.parse(source / "Contact.xml")  # noqa: S314 - the Ed-Fi sample
    for element in tree.getroot():
        if element.tag == q("StudentContactAssociation") and student_of(element) in STUDENTS:
            contacts.add(
                element.findtext(q("ContactReference/ContactIdentity/ContactUniqueId")) or ""
            )
            ref = element.find(q("ContactReference"))
            contacts.add("" if ref is None else ref.get("ref") or "")
    discipline = ET.parse(source / "StudentDiscipline.xml")  # noqa: S314
    for element in discipline.getroot():
        if student_of(element) in STUDENTS:
            ref = element.find(f".//{q('DisciplineIncidentReference')}")
            if ref is not None:
                incidents.add(ref.get("ref") or "")
                incidents.add(ref.findtext(f".//{q('IncidentIdentifier')}") or "")
    for name in FILES:
        tree = ET.parse(source / name)  # noqa: S314
        root = tree.getroot()
        for element in list(root):
            tag = element.tag.split("}")[1]
            if tag == "Contact":
                keep = bool(
                    {element.findtext(q("ContactUniqueId")) or "", element.get("id") or ""}
                    & contacts - {""}
                )
            elif tag == "DisciplineIncident":
                keep = bool(
                    {element.get("id") or "", element.findtext(q("IncidentIdentifier")) or ""}
                    & incidents
                )
            elif tag in ("LocalEducationAgency", "StateEducationAgency", "School", "Assessment"):
                keep = True
            elif tag == "StaffDisciplineIncidentAssociation":
                keep = False
            else:
                keep = student_of(element) in STUDENTS
            if not keep:
                root.remove(element)
        ET.indent(tree, "\t")
        tree.write(OUT / name, encoding="UTF-8", xml_declaration=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
