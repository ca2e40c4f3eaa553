"""Following a patient message as the patient would: send the queue, find the link, open it, give the birth date."""

from __future__ import annotations

import re
from typing import Any

from django.core.management import call_command
from django.test import Client

from relais.audit.models import AuditEvent

LINK = re.compile(r"http://testserver(/r/[A-Za-z0-9_-]{40,})")


def audited(action: str, object_id: Any) -> bool:
    return any(str(object_id) in ids for ids in AuditEvent.objects.filter(action=action).values_list("object_ids", flat=True))


def send_messages() -> None:
    call_command("notify_worker", "--once")


def link_in(text: str) -> str:
    match = LINK.search(text)
    assert match, text
    return match.group(1)


def open_link(link: str, client: Client | None = None) -> Client:
    client = client or Client()
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == "/r/" and response["Referrer-Policy"] == "no-referrer"
    return client


def unlock(client: Client, dob: str = "12/03/1994") -> Any:
    return client.post("/r/", {"date_of_birth": dob})
