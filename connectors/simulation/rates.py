"""Proportions and event rates of the simulated district, each with its public source.

Figures are rounded: the point is plausible proportions, not a statistical model. "Per year"
rates are spread over a 180-day school year (the most common state minimum, NCES State
Education Reforms table 5.14).
"""

from __future__ import annotations

from typing import Final

SCHOOL_DAYS_PER_YEAR: Final[int] = 180

# --- special indicators, as a share of all students -----------------------------------------

#: Served under IDEA (IEP): 15% of public school students, 2022-23.
#: NCES Condition of Education, "Students With Disabilities" (indicator cgg).
IDEA: Final[float] = 0.15

#: Section 504 plan only (no IEP): about 2.7% of students.
#: U.S. Dept. of Education Office for Civil Rights, Civil Rights Data Collection 2017-18.
SECTION_504_ONLY: Final[float] = 0.027

#: English learners: 10.6% of public school students, fall 2021.
#: NCES Condition of Education, "English Learners in Public Schools" (indicator cgf).
ENGLISH_LEARNER: Final[float] = 0.10

#: Eligible for free or reduced-price lunch: 52% in 2019-20 (about half).
#: NCES Digest of Education Statistics, table 204.10.
FREE_REDUCED_LUNCH: Final[float] = 0.50

#: Share of FRPL-eligible students who are eligible for reduced price (not free):
#: roughly 1 in 10 (USDA FNS National School Lunch Program participation data).
REDUCED_OF_FRPL: Final[float] = 0.10

#: Homeless (McKinney-Vento): about 1.2 million students, ~2.5%, SY 2021-22.
#: National Center for Homeless Education, "Student Homelessness in America" (federal data
#: summary); the same programme reports about 2.5% in the pre-pandemic years.
HOMELESS: Final[float] = 0.025

#: In foster care: about 0.5% of school-age children.
#: HHS Children's Bureau, AFCARS report (~370,000 children in care, about 60% of school age).
FOSTER_CARE: Final[float] = 0.005

#: Food allergy: about 1 in 13 children (~8%).
#: CDC, Healthy Schools "Food Allergies" (citing Gupta et al., Pediatrics 2018: 7.6%).
FOOD_ALLERGY: Final[float] = 0.08

#: Current asthma: 6.5% of children under 18, 2021.
#: CDC, "Most Recent National Asthma Data" (National Health Interview Survey).
ASTHMA: Final[float] = 0.065

#: Diagnosed diabetes (mostly type 1): about 0.35% of people under 20.
#: CDC, National Diabetes Statistics Report 2020 (~283,000 under 20).
DIABETES: Final[float] = 0.0035

#: Active epilepsy: about 0.6% of children 0-17.
#: CDC, "Epilepsy Data and Statistics" (~470,000 children).
EPILEPSY: Final[float] = 0.006

#: Gifted and talented programmes: about 6.7% of students.
#: NCES Digest of Education Statistics, table 204.90 (CRDC).
GIFTED: Final[float] = 0.067

#: Share of students whose SIS record still carries a Social Security number (some states
#: collect it at enrolment). Invented for the simulation: the point is to exercise the
#: never-share stripping.
HAS_SSN: Final[float] = 0.20

#: Share of students with a free-text counselling note on file. Invented, as above.
COUNSELING_NOTE: Final[float] = 0.04

#: Distribution of IDEA primary disability categories, 2022-23.
#: NCES Condition of Education, "Students With Disabilities", figure 2.
IDEA_CATEGORIES: Final[tuple[tuple[str, float], ...]] = (
    ("specific_learning_disability", 0.32),
    ("speech_or_language_impairment", 0.19),
    ("other_health_impairment", 0.15),
    ("autism", 0.13),
    ("developmental_delay", 0.07),
    ("intellectual_disability", 0.06),
    ("emotional_disturbance", 0.05),
    ("multiple_disabilities", 0.02),
    ("hearing_impairment", 0.01),
)

# --- demographics ---------------------------------------------------------------------------

#: Race/ethnicity of public school students, fall 2021: NCES Condition of Education,
#: "Racial/Ethnic Enrollment in Public Schools" (indicator cge).
RACE_ETHNICITY: Final[tuple[tuple[str, float], ...]] = (
    ("white", 0.45),
    ("hispanic", 0.28),
    ("black", 0.15),
    ("asian", 0.05),
    ("two_or_more", 0.05),
    ("american_indian_alaska_native", 0.01),
    ("native_hawaiian_pacific_islander", 0.01),
)

#: Male share of public school enrolment: about 51.4% (NCES Digest, table 203.60).
MALE: Final[float] = 0.514

#: Students living with two guardians recorded in the SIS: about 70% of children live with two
#: parents (U.S. Census Bureau, America's Families and Living Arrangements 2022).
TWO_GUARDIANS: Final[float] = 0.70

# --- school sizes ---------------------------------------------------------------------------

#: Average enrolment by level, 2020-21: primary ~470, middle ~590, high ~850 in the NCES
#: Digest table 216.40 (rounded; larger suburban districts run bigger secondary schools).
ELEMENTARY_SCHOOL_SIZE: Final[int] = 470
MIDDLE_SCHOOL_SIZE: Final[int] = 600
HIGH_SCHOOL_SIZE: Final[int] = 900

#: Average class size: ~21 primary (self-contained), ~25 secondary (NCES Schools and Staffing
#: Survey / National Teacher and Principal Survey 2017-18, rounded up for core classes).
ELEMENTARY_CLASS_SIZE: Final[int] = 21
SECONDARY_CLASS_SIZE: Final[int] = 25

#: Sections a secondary teacher teaches: 5 of 7 periods (common contract load).
SECTIONS_PER_TEACHER: Final[int] = 5

# --- daily events ---------------------------------------------------------------------------

#: Average daily absence: average daily attendance is ~93-94% of enrolment (NCES Digest,
#: table 203.90), so ~6% of students are absent on a given day. Each student draws an
#: individual propensity so that a minority is chronically absent (about 1 in 4 students
#: missed 10%+ of days in 2021-22, U.S. Dept. of Education chronic absenteeism data).
MEAN_DAILY_ABSENCE: Final[float] = 0.06

#: Tardy arrivals: about 3% of students per day (invented, in line with district reports).
MEAN_DAILY_TARDY: Final[float] = 0.03

#: Students with at least one disciplinary incident in a year: a few percent. CRDC 2017-18
#: reports ~5% of students with one or more out-of-school suspensions; incidents that end in
#: lesser actions add to it. Here: 8% of students per year, about one incident each.
DISCIPLINE_PER_YEAR: Final[float] = 0.08

#: Students who leave the district during the year (move away, private school): ~4%; students
#: who move to another school of the same district: ~3%. Student mobility, GAO-11-40 (2010)
#: and NCES "Student Mobility" research briefs report 5-10% non-promotional moves per year.
WITHDRAWAL_PER_YEAR: Final[float] = 0.04
TRANSFER_PER_YEAR: Final[float] = 0.03

#: Mid-year new enrolments roughly balance withdrawals.
NEW_ENROLMENT_PER_YEAR: Final[float] = 0.04

#: Contact detail updates (new phone, e-mail or address): ~10% of families a year (invented;
#: Census CPS shows ~8-10% of households with children move each year).
CONTACT_UPDATE_PER_YEAR: Final[float] = 0.10

# --- consent --------------------------------------------------------------------------------

#: Parents who opt out of directory information (FERPA 34 CFR 99.37) after the annual notice:
#: a few percent (district reports commonly show 2-5%).
DIRECTORY_OPT_OUT: Final[float] = 0.03

#: Parents who opt out of all data sharing with third parties: ~1% (invented, plausible).
ALL_OPT_OUT: Final[float] = 0.01

#: Parents who opt out of one partner: ~1.5% (invented, plausible).
PARTNER_OPT_OUT: Final[float] = 0.015

#: Families of students with medical needs or an IEP/504 plan who sign the health partner's
#: consent form: 60% (invented).
HEALTH_CONSENT_UPTAKE: Final[float] = 0.60

#: Share of those consents that are already signed at the start of the year (collected at
#: registration); the rest arrive over the first weeks of school.
CONSENT_AT_START: Final[float] = 0.70

#: Consents revoked per year: 15% of the granted ones (invented; high enough that short runs see
#: some revocations).
REVOKE_PER_YEAR: Final[float] = 0.15

#: Share of new consents that are short-lived (a field-trip or seasonal medication form) and
#: expire after two weeks, so consumers meet expiry.
SHORT_CONSENT: Final[float] = 0.05

#: Days within which parents return the annual notice forms (opt-outs arrive in this window).
NOTICE_WINDOW_DAYS: Final[int] = 15
