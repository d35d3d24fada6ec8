"""Ed-Fi XML interchanges (Data Standard 4.x/5.x) -> one ``StudentRecordChanged`` per student.

A load is a directory or zip of interchange files, each optional (Student, Contact,
StudentEnrollment, StudentAttendance, StudentDiscipline, StudentProgram, StudentAssessment,
StudentGrade, StudentTranscript, with EducationOrganization, MasterSchedule and
AssessmentMetadata for names). The jobs, one module each:

- :mod:`~connectors.edfi.interchange`: which interchange and Data Standard a file is;
- :mod:`~connectors.edfi.stream`: streaming reads of a file, record by record, with lines;
- :mod:`~connectors.edfi.descriptors`: descriptor values -> schema codes (``descriptors.yaml``);
- :mod:`~connectors.edfi.readers`: one reader per element, folding records into the state;
- :mod:`~connectors.edfi.state`: the per-student join state and the lookups;
- :mod:`~connectors.edfi.events`: a student's state -> the sections of its event;
- :mod:`~connectors.edfi.load`: :func:`read_load`, the whole read.

Publishing reuses the OneRoster connector's :func:`~connectors.oneroster.publish.
publish_result` (fingerprints in the source's state store, state after acks).
"""

from connectors.edfi.load import (
    DEFAULT_KEY_RULE,
    KEY_FIELDS,
    TYPED_KEY_FIELDS,
    EdFiLoadError,
    LoadSummary,
    read_load,
)

__all__ = [
    "DEFAULT_KEY_RULE",
    "KEY_FIELDS",
    "TYPED_KEY_FIELDS",
    "EdFiLoadError",
    "LoadSummary",
    "read_load",
]
