"""Every read of a pharmacy's rows goes through here: scoped to the actor's pharmacy, or refused.

Another pharmacy's object is simply not in the queryset, so a lookup raises the model's DoesNotExist and a view answers
404 (never 403, which would confirm the object exists). Operators and auditors have no pharmacy and see no patient data.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


class Actor(Protocol):
    """What scoping needs from a staff user (relais.accounts.models.User); core imports no app above it."""

    @property
    def tenant_id(self) -> uuid.UUID: ...

    @property
    def sees_patients(self) -> bool: ...


def for_actor(source: QuerySet[M] | type[M], actor: Actor, *, field: str = "pharmacy", patient_data: bool = True) -> QuerySet[M]:
    """``source`` restricted to the rows whose ``field`` (a path such as "client__pharmacy" is fine) is the actor's pharmacy.

    Raises PermissionDenied for an actor without a pharmacy, and, when the rows hold patient data (the default), for an
    actor whose role does not see patients."""
    if patient_data and not actor.sees_patients:
        raise PermissionDenied
    queryset: QuerySet[M] = source if isinstance(source, QuerySet) else source._default_manager.all()
    return queryset.filter(**{f"{field}_id": actor.tenant_id})


def get_for_actor(source: QuerySet[M] | type[M], actor: Actor, pk: Any, *, field: str = "pharmacy", patient_data: bool = True) -> M:
    """The object ``pk`` if it belongs to the actor's pharmacy; otherwise the model's DoesNotExist, as if it did not exist."""
    return for_actor(source, actor, field=field, patient_data=patient_data).get(pk=pk)
