"""Built-in reference lists: names, places, languages and the course catalogue.

Everything here is invented or generic (common US given names and surnames, fictional street
names); no real person is described.
"""

from __future__ import annotations

from typing import Final

GIVEN_NAMES_FEMALE: Final[tuple[str, ...]] = (
    "Olivia", "Emma", "Charlotte", "Amelia", "Sophia", "Mia", "Isabella", "Ava", "Evelyn",
    "Luna", "Harper", "Sofia", "Camila", "Eleanor", "Elizabeth", "Violet", "Scarlett", "Emily",
    "Hazel", "Lily", "Gianna", "Aurora", "Penelope", "Aria", "Nora", "Chloe", "Ellie", "Mila",
    "Avery", "Layla", "Abigail", "Ella", "Isla", "Eliana", "Nova", "Madison", "Zoe", "Ivy",
    "Grace", "Lucy", "Willow", "Emilia", "Riley", "Naomi", "Victoria", "Stella", "Maya",
    "Paisley", "Valentina", "Ximena", "Aaliyah", "Jade", "Amara", "Leilani", "Priya", "Mei",
    "Fatima", "Yasmin", "Daniela", "Guadalupe", "Keisha", "Imani", "Hana", "Ngozi", "Anjali",
)

GIVEN_NAMES_MALE: Final[tuple[str, ...]] = (
    "Liam", "Noah", "Oliver", "James", "Elijah", "Mateo", "Theodore", "Henry", "Lucas",
    "William", "Benjamin", "Levi", "Sebastian", "Jack", "Ezra", "Michael", "Daniel", "Leo",
    "Owen", "Samuel", "Hudson", "Alexander", "Asher", "Luca", "Ethan", "John", "David",
    "Jackson", "Joseph", "Mason", "Luke", "Matthew", "Julian", "Dylan", "Elias", "Jacob",
    "Maverick", "Gabriel", "Logan", "Aiden", "Thomas", "Isaac", "Miles", "Grayson", "Santiago",
    "Anthony", "Wyatt", "Carter", "Jayden", "Diego", "Carlos", "Jamal", "Malik", "Darnell",
    "Omar", "Ahmed", "Wei", "Hiroshi", "Arjun", "Rohan", "Kwame", "Tariq", "Andre", "Minh",
)

MIDDLE_NAMES: Final[tuple[str, ...]] = (
    "Marie", "Ann", "Lynn", "Rose", "Grace", "Jean", "Elizabeth", "James", "Lee", "Michael",
    "Alexander", "Joseph", "Ray", "Jose", "Maria", "Kai", "Jordan", "Quinn",
)

SURNAMES: Final[tuple[str, ...]] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
    "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
    "Chen", "Wang", "Singh", "Okafor", "Nakamura", "Haddad", "Kowalski", "Novak", "Tran",
)

STREET_NAMES: Final[tuple[str, ...]] = (
    "Maple", "Oak", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Walnut",
    "Sunset", "Highland", "Ridge", "Meadow", "Chestnut", "Spruce", "Willow", "Church", "Mill",
    "River", "Franklin", "Jefferson", "Lincoln", "Madison", "Jackson", "Forest", "Spring",
)

STREET_SUFFIXES: Final[tuple[str, ...]] = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way", "Pl")

#: Fictional district names; a district takes one in order of its number.
DISTRICT_NAMES: Final[tuple[tuple[str, str, str], ...]] = (
    # (district name, city, state)
    ("Riverbend Unified School District", "Riverbend", "NY"),
    ("Maple Valley Central School District", "Maple Valley", "NY"),
    ("Cedar Hills School District", "Cedar Hills", "NY"),
    ("Lakeshore Public Schools", "Lakeshore", "NY"),
    ("Granite Falls Union Free School District", "Granite Falls", "NY"),
)

#: School name stems; a school is "<stem> Elementary School" and so on.
SCHOOL_NAME_STEMS: Final[tuple[str, ...]] = (
    "Washington", "Lincoln", "Jefferson", "Roosevelt", "Hawthorne", "Whitman", "Carver",
    "Sojourner Truth", "Franklin", "Emerson", "Thoreau", "Dickinson", "Hamilton", "Tubman",
    "Parks", "Earhart", "Curie", "Chavez", "Douglass", "Kennedy", "Audubon", "Muir",
)

#: Home languages other than English, weighted roughly as in NCES Condition of Education,
#: "English Learners in Public Schools" (Spanish ~76% of English learners, then Arabic,
#: Chinese, Vietnamese, ...).
EL_HOME_LANGUAGES: Final[tuple[tuple[str, float], ...]] = (
    ("spa", 0.76), ("ara", 0.03), ("zho", 0.02), ("vie", 0.02), ("por", 0.01),
    ("hat", 0.01), ("rus", 0.01), ("som", 0.01), ("urd", 0.01), ("ben", 0.01),
    ("kor", 0.01), ("hmn", 0.01), ("hin", 0.01), ("tgl", 0.01), ("fra", 0.01),
    ("pol", 0.01), ("amh", 0.01), ("nep", 0.01), ("swa", 0.01), ("yor", 0.01),
)

GUARDIAN_RELATIONSHIPS: Final[tuple[tuple[str, float], ...]] = (
    ("mother", 0.50), ("father", 0.38), ("grandparent", 0.06), ("guardian", 0.04),
    ("foster_parent", 0.02),
)

EMAIL_DOMAINS: Final[tuple[str, ...]] = (
    "example.com", "example.net", "example.org", "mail.example.com",
)

#: Middle-school course catalogue, one course per period: (code stem, title, subject).
#: One course per core subject plus PE, arts and a world language.
MIDDLE_COURSES: Final[tuple[tuple[str, str, str], ...]] = (
    ("ELA", "English Language Arts", "English Language Arts"),
    ("MATH", "Mathematics", "Mathematics"),
    ("SCI", "Science", "Science"),
    ("SS", "Social Studies", "Social Studies"),
    ("PE", "Physical Education", "Physical Education"),
    ("ART", "Art and Music", "Fine Arts"),
    ("SPAN", "Spanish", "World Languages"),
)

#: High-school course catalogue, one course per period: (code stem, subject, titles for
#: grades 9..12).
HIGH_COURSES: Final[tuple[tuple[str, str, tuple[str, str, str, str]], ...]] = (
    ("ENG", "English Language Arts", ("English 9", "English 10", "English 11", "English 12")),
    ("MATH", "Mathematics", ("Algebra I", "Geometry", "Algebra II", "Precalculus")),
    ("SCI", "Science", ("Earth Science", "Biology", "Chemistry", "Physics")),
    ("SS", "Social Studies", ("Global History I", "Global History II", "US History",
                              "Government and Economics")),
    ("PE", "Physical Education", ("Physical Education", "Physical Education", "Health",
                                  "Physical Education")),
    ("LANG", "World Languages", ("Spanish I", "Spanish II", "Spanish III", "Spanish IV")),
    ("ELEC", "Electives", ("Studio Art", "Computer Science", "Band", "Psychology")),
)

#: Subject areas of the benchmark assessments given three times a year.
BENCHMARK_SUBJECTS: Final[tuple[str, ...]] = ("Reading", "Mathematics")

#: Free-text fragments for the never-share notes the SIS keeps (counselling, nurse).
HEALTH_NOTES: Final[tuple[str, ...]] = (
    "Carries epinephrine auto-injector; peanut and tree nut allergy.",
    "Uses inhaler before PE; call parent if symptoms persist.",
    "Insulin pump; checks glucose before lunch with the nurse.",
    "Seizure action plan on file; rescue medication in nurse office.",
    "Medication at noon administered by nurse.",
)

COUNSELING_NOTES: Final[tuple[str, ...]] = (
    "Met with counselor about peer conflict; follow-up in two weeks.",
    "Family transition at home; check in weekly.",
    "Referred to school psychologist for evaluation.",
    "Discussed attendance concerns with student and parent.",
)

DISCIPLINE_INCIDENTS: Final[tuple[tuple[str, str, float], ...]] = (
    # (incident type, typical action, relative weight)
    ("disruptive_behavior", "detention", 0.35),
    ("defiance", "detention", 0.20),
    ("fighting", "out_of_school_suspension", 0.12),
    ("bullying", "in_school_suspension", 0.10),
    ("truancy", "parent_conference", 0.10),
    ("vandalism", "in_school_suspension", 0.05),
    ("technology_misuse", "loss_of_privileges", 0.05),
    ("substance_possession", "out_of_school_suspension", 0.03),
)
