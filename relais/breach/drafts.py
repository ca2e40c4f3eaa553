"""The texts a breach case produces, in French and in English: the Art. 33 notification draft for the supervisory
authority (CNIL) and the Art. 34 letter to each person concerned. Both are built from counts and categories only; the
letter is the same for every patient of a pharmacy, so it names nobody and can be previewed without identity."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from relais.accounts.models import Pharmacy
from relais.breach.models import BreachCase, Selector

LANGUAGES = ("fr", "en")

CATEGORY_LABELS: dict[str, dict[str, str]] = {
    "identity": {"fr": "identité (nom, prénoms, sexe, date de naissance)", "en": "identity (last name, first names, sex, date of birth)"},
    "nir": {"fr": "numéro de sécurité sociale (NIR), lorsqu'il a été donné", "en": "social security number (NIR), when given"},
    "contact": {
        "fr": "coordonnées (adresse postale, téléphone, adresse électronique), lorsqu'elles ont été données",
        "en": "contact details (postal address, phone, email), when given",
    },
    "tests": {
        "fr": "données de santé : tests de dépistage et leurs résultats (test, date du prélèvement, résultat)",
        "en": "health data: screening tests and their results (test, sampling date, result)",
    },
    "certificates": {
        "fr": "certificats COVID numériques de l'UE (nom, date de naissance, résultat)",
        "en": "EU Digital COVID Certificates (name, date of birth, result)",
    },
    "messages": {
        "fr": "messages envoyés au patient (adresse, lien vers le résultat)",
        "en": "messages sent to the patient (address, result link)",
    },
    "uploads": {
        "fr": "fichiers importés par la pharmacie (identité et résultats qu'ils contiennent)",
        "en": "files uploaded by the pharmacy (the identities and results they hold)",
    },
    "other": {"fr": "autres données chiffrées", "en": "other encrypted data"},
}

_CONSEQUENCES: dict[str, dict[str, str]] = {
    "tests": {
        "fr": "divulgation d'une donnée de santé (résultat d'un test de dépistage) : atteinte à la vie privée, "
        "risque de discrimination ou de stigmatisation",
        "en": "disclosure of health data (a screening test result): invasion of privacy, risk of discrimination or stigma",
    },
    "nir": {
        "fr": "usurpation d'identité ou fraude à partir du NIR et de l'identité",
        "en": "identity theft or fraud using the NIR and identity",
    },
    "contact": {
        "fr": "messages ou appels frauduleux (hameçonnage) se réclamant de la pharmacie ou de l'Assurance maladie",
        "en": "fraudulent messages or calls (phishing) claiming to come from the pharmacy or the health insurance",
    },
    "identity": {
        "fr": "rapprochement de la personne avec une pharmacie et une date de visite",
        "en": "linking the person to a pharmacy and a visit date",
    },
}

_NATURE: dict[str, dict[str, str]] = {
    Selector.ACCOUNT: {
        "fr": "Violation de confidentialité : compromission possible du compte d'un membre du personnel (identifiant {ref}). "
        "Tous les accès de ce compte pendant la période sont présumés faits par un tiers non autorisé.",
        "en": "Breach of confidentiality: a staff account (id {ref}) may have been compromised. "
        "Every access by this account during the period is presumed to have been made by an unauthorised party.",
    },
    Selector.API_CLIENT: {
        "fr": "Violation de confidentialité : compromission possible d'un logiciel de pharmacie connecté (client API {ref}). "
        "Tous les accès de ce client pendant la période sont présumés faits par un tiers non autorisé.",
        "en": "Breach of confidentiality: a connected pharmacy software (API client {ref}) may have been compromised. "
        "Every access by this client during the period is presumed to have been made by an unauthorised party.",
    },
    Selector.PHARMACY: {
        "fr": "Violation de confidentialité : exposition possible de toutes les données détenues pour la pharmacie FINESS {ref}.",
        "en": "Breach of confidentiality: all data held for the pharmacy with FINESS {ref} may have been exposed.",
    },
    Selector.KEY_ID: {
        "fr": "Violation de confidentialité : compromission possible de la clé de chiffrement des données {ref}. "
        "Les valeurs chiffrées sous cette clé peuvent être lues par quiconque détient aussi une copie de la base de données.",
        "en": "Breach of confidentiality: the data encryption key {ref} may have been compromised. "
        "Values encrypted under this key can be read by anyone who also holds a copy of the database.",
    },
    Selector.ALL: {
        "fr": "Violation de confidentialité : exposition possible de toutes les données détenues (base de données ou sauvegarde).",
        "en": "Breach of confidentiality: all data held (database or backup) may have been exposed.",
    },
}

_MEASURES: dict[str, dict[str, str]] = {
    Selector.ACCOUNT: {
        "fr": "compte désactivé, sessions fermées, mot de passe et second facteur réinitialisés (à confirmer)",
        "en": "account deactivated, sessions ended, password and second factor reset (to be confirmed)",
    },
    Selector.API_CLIENT: {
        "fr": "client API et ses clés révoqués, jetons d'accès invalidés (à confirmer)",
        "en": "API client and its keys revoked, access tokens invalidated (to be confirmed)",
    },
    Selector.PHARMACY: {
        "fr": "accès de la pharmacie suspendus et revus (à confirmer)",
        "en": "the pharmacy's access suspended and reviewed (to be confirmed)",
    },
    Selector.KEY_ID: {
        "fr": "rotation des clés (rotate_keys) puis destruction de la clé compromise (à confirmer)",
        "en": "keys rotated (rotate_keys), then the compromised key destroyed (to be confirmed)",
    },
    Selector.ALL: {
        "fr": "accès à la base et aux sauvegardes revus, clés renouvelées (à confirmer)",
        "en": "database and backup access reviewed, keys renewed (to be confirmed)",
    },
}

_ENCRYPTION_NOTE = {
    "fr": "L'identité et les coordonnées sont chiffrées champ par champ (AES-256-GCM, clés enveloppées par une clé maîtresse "
    "conservée hors de la base) ; une copie de la base sans les clés ne les révèle pas. Les résultats de test sont liés à un "
    "identifiant aléatoire du patient.",
    "en": "Identity and contact details are encrypted field by field (AES-256-GCM, data keys wrapped by a master key kept "
    "outside the database); a copy of the database without the keys does not reveal them. Test results are linked to a "
    "random patient id.",
}


def _config() -> dict[str, Any]:
    return settings.RELAIS_BREACH  # type: ignore[no-any-return]


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


def _day(value: datetime) -> str:
    return timezone.localtime(value).strftime("%d/%m/%Y")


def dpo_contact(language: str) -> str:
    config = _config()
    parts = [config["dpo_name"], config["dpo_email"], config.get("dpo_phone", "")]
    return ", ".join(p for p in parts if p)


def nature(case: BreachCase, language: str) -> str:
    text = _NATURE[case.selector][language].format(ref=case.selector_ref or "-")
    return f"{text} {case.nature}".strip()


def measures(case: BreachCase, language: str, *, letters: int) -> list[str]:
    done = [_MEASURES[case.selector][language]]
    if case.measures:
        done.append(case.measures)
    done.append(
        f"{letters} lettre(s) d'information aux personnes concernées (art. 34) préparée(s), envoyée(s) après approbation"
        if language == "fr"
        else f"{letters} letter(s) to the people concerned (Art. 34) prepared, sent once approved"
    )
    return done


def consequences(categories: list[str], language: str) -> list[str]:
    return [_CONSEQUENCES[c][language] for c in ("tests", "nir", "contact", "identity") if c in categories]


def _result_label(code: str, language: str) -> str:
    labels = {
        "260373001": {"fr": "positif", "en": "positive"},
        "260415000": {"fr": "négatif", "en": "negative"},
        "125154007": {"fr": "invalide", "en": "invalid"},
        "455371000124106": {"fr": "invalide", "en": "invalid"},  # the invalid code before issue 16
    }
    return labels.get(code, {}).get(language, code)


_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Projet de notification de violation de données à la CNIL (RGPD, art. 33)",
        "draft": "*Projet généré par Relais, à relire et compléter avant envoi.*",
        "controller": "Responsable de traitement",
        "case": "Dossier",
        "period": "Période concernée",
        "end": "fin exclue",
        "discovered": "Découverte",
        "deadline": "Notification à faire avant",
        "h1": "1. Nature de la violation",
        "h2": "2. Catégories et nombre approximatif de personnes concernées",
        "people": "Patients de pharmacies ayant fait un test de dépistage : **{n}** personne(s).",
        "pharmacy": "Pharmacie",
        "persons": "Personnes",
        "h3": "3. Catégories et nombre approximatif d'enregistrements concernés",
        "records": "Fiches patient",
        "tests": "Tests de dépistage",
        "versions": "versions enregistrées",
        "certificates": "Certificats COVID numériques de l'UE",
        "events": "Événements du journal d'audit dans la période",
        "encrypted": "Lignes chiffrées sous la clé",
        "h4": "4. Conséquences probables",
        "h5": "5. Mesures prises ou proposées",
        "h6": "6. Contact",
        "dpo": "Délégué à la protection des données : ",
    },
    "en": {
        "title": "Draft personal data breach notification to the CNIL (GDPR Art. 33)",
        "draft": "*Draft generated by Relais, to be reviewed and completed before it is sent.*",
        "controller": "Controller",
        "case": "Case",
        "period": "Period concerned",
        "end": "end excluded",
        "discovered": "Discovered",
        "deadline": "Notify before",
        "h1": "1. Nature of the breach",
        "h2": "2. Categories and approximate number of people concerned",
        "people": "Pharmacy patients who took a screening test: **{n}** people.",
        "pharmacy": "Pharmacy",
        "persons": "People",
        "h3": "3. Categories and approximate number of records concerned",
        "records": "Patient records",
        "tests": "Screening tests",
        "versions": "recorded versions",
        "certificates": "EU Digital COVID Certificates",
        "events": "Audit log events in the period",
        "encrypted": "Rows encrypted under the key",
        "h4": "4. Likely consequences",
        "h5": "5. Measures taken or proposed",
        "h6": "6. Contact",
        "dpo": "Data protection officer: ",
    },
}


def art33(case: BreachCase, report: dict[str, Any], language: str) -> str:
    """The notification draft for the CNIL (GDPR Art. 33(3) a-d), as Markdown: counts and categories, never a name."""
    t = _LABELS[language]
    patients = report["patients"]
    tests = report["tests"]
    categories = report["categories"]
    deadline = case.discovered_at + timedelta(hours=72)
    lines = [
        f"# {t['title']}",
        "",
        t["draft"],
        "",
        f"- {t['controller']} : {_config()['controller']}",
        f"- {t['case']} : {case.pk}",
        f"- {t['period']} : {_when(case.since)} → {_when(case.until)} ({t['end']})",
        f"- {t['discovered']} : {_when(case.discovered_at)}",
        f"- {t['deadline']} : {_when(deadline)} (72 h)",
        "",
        f"## {t['h1']}",
        "",
        nature(case, language),
        "",
        f"## {t['h2']}",
        "",
        t["people"].format(n=patients["total"]),
        "",
        f"| FINESS | {t['pharmacy']} | {t['persons']} |",
        "| --- | --- | ---: |",
        *[f"| {row['finess']} | {row['name']} | {row['patients']} |" for row in patients["by_pharmacy"]],
        "",
        f"## {t['h3']}",
        "",
        *[f"- {CATEGORY_LABELS[c][language]}" for c in categories],
        "",
        f"- {t['records']} : {report['records']['patients']}",
        f"- {t['tests']} : {tests['tests']} ({tests['records']} {t['versions']})",
        *[f"  - {r['analyte']} {_result_label(r['result'], language)} : {r['count']}" for r in tests["results"]],
        f"- {t['certificates']} : {report['records']['certificates']}",
        f"- {t['events']} : {report['events']['total']}",
        *[f"- {t['encrypted']} ({table}) : {n}" for table, n in report["encrypted_rows"].items()],
        "",
        f"## {t['h4']}",
        "",
        *[f"- {c}" for c in consequences(categories, language)],
        "",
        _ENCRYPTION_NOTE[language],
        "",
        f"## {t['h5']}",
        "",
        *[f"- {m}" for m in measures(case, language, letters=patients["total"])],
        "",
        f"## {t['h6']}",
        "",
        t["dpo"] + dpo_contact(language),
        "",
    ]
    return "\n".join(lines)


def letter_subject() -> str:
    return "Information sur un incident de sécurité concernant vos données / Information about a security incident involving your data"


def letter_text(case: BreachCase, pharmacy: Pharmacy, *, short: bool = False) -> str:
    """The Art. 34 letter for every patient of ``pharmacy`` in the case, French then English (SMS: ``short``)."""
    categories = case.report.get("categories", [])
    since, until = _day(case.since), _day(case.until)
    contact = _config()["dpo_email"]
    if short:
        return (
            f"{pharmacy.name} : un incident de sécurité survenu entre le {since} et le {until} a pu exposer vos données de dépistage. "
            f"Questions : {contact}\n"
            f"{pharmacy.name}: a security incident between {since} and {until} may have exposed your screening data. Questions: {contact}"
        )
    parts = []
    for language in LANGUAGES:
        fr = language == "fr"
        data = "; ".join(CATEGORY_LABELS[c][language] for c in categories) or ("-")
        harms = "; ".join(consequences(categories, language)) or "-"
        done = "; ".join(measures(case, language, letters=0)[:-1])
        if fr:
            parts.append(
                "Madame, Monsieur,\n\n"
                f"Vous avez effectué un test de dépistage à {pharmacy.name} ({pharmacy.city}). Un incident de sécurité survenu entre le "
                f"{since} et le {until} a pu exposer des données vous concernant.\n\n"
                f"Ce qui s'est passé : {nature(case, language)}\n"
                f"Données concernées : {data}.\n"
                f"Conséquences possibles : {harms}.\n"
                f"Mesures prises : {done}.\n"
                "Ce que nous vous recommandons : méfiez-vous des messages ou appels se réclamant de votre pharmacie ou de l'Assurance "
                "maladie qui vous demanderaient des informations personnelles ou bancaires ; nous ne vous les demanderons jamais.\n\n"
                f"Pour toute question ou pour exercer vos droits : {dpo_contact(language)}. "
                "Vous pouvez aussi adresser une réclamation à la CNIL (www.cnil.fr).\n\n"
                f"{pharmacy.name}"
            )
        else:
            parts.append(
                "Dear Sir or Madam,\n\n"
                f"You took a screening test at {pharmacy.name} ({pharmacy.city}). A security incident between {since} and {until} "
                "may have exposed data about you.\n\n"
                f"What happened: {nature(case, language)}\n"
                f"Data concerned: {data}.\n"
                f"Possible consequences: {harms}.\n"
                f"Measures taken: {done}.\n"
                "What we recommend: be wary of messages or calls claiming to come from your pharmacy or the health insurance that ask "
                "for personal or bank details; we will never ask you for them.\n\n"
                f"For any question or to exercise your rights: {dpo_contact(language)}. "
                "You may also lodge a complaint with the CNIL (www.cnil.fr).\n\n"
                f"{pharmacy.name}"
            )
    return "\n\n----\n\n".join(parts)
