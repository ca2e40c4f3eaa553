"""Inserting many rows fast: one prepared INSERT bound with executemany, for the intake's hot path.

Django's bulk_create compiles every value of every row into SQL text (about two thirds of a batch's time, measured in
issue 13); here the statement is built once per table and the values go straight to the driver. Same values as
bulk_create: each field's pre_save (auto_now, encryption) and get_db_prep_save. Rows need their primary key set
beforehand (UUIDs); a model with an auto-increment key gets its ids back through a unique UUID column.

get_db_prep_save for the common field types is taken by a shortcut when a value has the exact expected type (a str for
a text field, a UUID, an aware datetime...), the same value Django computes (tests/core/test_bulk.py compares them for
every field of every model, on SQLite and PostgreSQL); any other value goes through Django."""

from __future__ import annotations

import functools
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.fields.reverse_related import ForeignObjectRel
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from relais.core.fields import EncryptedAttribute, EncryptedTextField
from relais.core.ids import uuid7

M = TypeVar("M", bound=models.Model)

Convert = Callable[[Any], Any]
_TEXT_FIELDS = (models.CharField, models.TextField)
_INTEGER_FIELDS = (
    models.IntegerField,
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.PositiveBigIntegerField,
    models.SmallIntegerField,
    models.BigIntegerField,
)


def _fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [f for f in model._meta.local_concrete_fields if not isinstance(f, models.AutoField | models.BigAutoField)]


def db_value_converter(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> Convert:
    """``value -> field.get_db_prep_save(value, connection)``, with a shortcut for the value types intake writes."""
    slow = field.get_db_prep_save
    if isinstance(field, models.ForeignKey):
        target = db_value_converter(field.target_field, connection)
        empty_is_null = not field.target_field.empty_strings_allowed or connection.features.interprets_empty_strings_as_nulls

        def foreign(value: Any) -> Any:
            if value is None or (value == "" and empty_is_null):
                return None
            return target(value)

        return foreign
    kind = type(field)
    if kind in _TEXT_FIELDS or isinstance(field, EncryptedTextField):
        return lambda value: value if value is None or type(value) is str else slow(value, connection)
    if kind is models.BooleanField:
        return lambda value: value if value is None or type(value) is bool else slow(value, connection)
    if kind in _INTEGER_FIELDS:
        adapt_integer, internal = connection.ops.adapt_integerfield_value, field.get_internal_type()
        return lambda value: adapt_integer(value, internal) if type(value) is int else slow(value, connection)
    if kind is models.UUIDField:
        if connection.features.has_native_uuid_field:
            return lambda value: value if value is None or type(value) is uuid.UUID else slow(value, connection)
        return lambda value: value.hex if type(value) is uuid.UUID else slow(value, connection)
    if kind is models.DateTimeField:
        adapt_datetime = connection.ops.adapt_datetimefield_value
        if connection.vendor == "sqlite":
            zone = connection.timezone  # sqlite's adapter: make_naive in the connection's zone, then str()
            return lambda value: (
                str(value.astimezone(zone).replace(tzinfo=None))
                if type(value) is datetime and value.tzinfo is not None
                else slow(value, connection)
            )
        return lambda value: adapt_datetime(value) if type(value) is datetime and value.tzinfo is not None else slow(value, connection)
    return lambda value: slow(value, connection)


_PLAIN_PRE_SAVE = models.Field.pre_save


_PLAIN_ATTRIBUTES = (DeferredAttribute, ForeignKeyDeferredAttribute, EncryptedAttribute)


@functools.cache
def _constructor(model: type[models.Model]) -> list[tuple[str, str, bool, bool, Callable[[], Any]]]:
    """Per field, as Model.__init__ walks them: name, attname, whether a related object may be given by name, whether
    setting the attribute on a new instance is a plain write into __dict__, and the default."""
    out = []
    for f in model._meta.fields:
        if f.column is None or f.generated:
            continue
        plain = type(model.__dict__.get(f.attname)) in _PLAIN_ATTRIBUTES
        default = uuid7 if f.default is uuid.uuid4 else f.get_default  # rows written together, indexed together
        out.append((f.name, f.attname, isinstance(f.remote_field, ForeignObjectRel), plain, default))
    return out


def new(model: type[M], **kwargs: Any) -> M:
    """``model(**kwargs)`` for the intake's hot path (about 20 µs an instance, several per test): the same instance, the
    same defaults but time-ordered UUIDs (relais.core.ids) for random ones, related objects set through their descriptor
    (cached, type-checked), without the generic walk.
    Anything unusual (a property, positional arguments, init signals) goes to the model itself; tests/core/test_bulk.py
    compares both for every model the intake builds."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(**kwargs)
    instance = model.__new__(model)
    instance._state = ModelState()
    values = instance.__dict__
    for name, attname, relation, plain, default in _constructor(model):
        if relation and name in kwargs:
            setattr(instance, name, kwargs.pop(name))
            continue
        value = kwargs.pop(attname) if attname in kwargs else default()
        if plain:
            values[attname] = value
        else:
            setattr(instance, attname, value)
    if kwargs:
        raise TypeError(f"{model.__qualname__}() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    return instance


READ, STAMP, PRE_SAVE = range(3)


Preparers: TypeAlias = "list[tuple[models.Field[Any, Any], int, Convert]]"
# Per connection (each thread keeps its own wrapper object) and model: built once, not for every statement.
_PREPARED: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[type[models.Model], tuple[Preparers, str]]] = weakref.WeakKeyDictionary()


def _statement(model: type[models.Model], connection: BaseDatabaseWrapper) -> tuple[Preparers, str]:
    """The model's preparers and its INSERT statement, for this connection."""
    known = _PREPARED.setdefault(connection, {})
    found = known.get(model)
    if found is None:
        found = known[model] = (_preparers(model, connection), _insert_sql(model, [str(f.column) for f in _fields(model)]))
    return found


def _preparers(model: type[models.Model], connection: BaseDatabaseWrapper) -> Preparers:
    """Per field: the field, what its pre_save does on an INSERT (read the attribute; set it to now, the same instant for
    the whole statement; or anything else: call it) and its converter."""
    out: Preparers = []
    for f in _fields(model):
        if type(f).pre_save is _PLAIN_PRE_SAVE:
            how = READ
        elif type(f) is models.DateTimeField and (f.auto_now or f.auto_now_add):
            how = STAMP
        else:
            how = PRE_SAVE
        out.append((f, how, db_value_converter(f, connection)))
    return out


def _insert_sql(model: type[models.Model], columns: Sequence[str]) -> str:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    # Identifiers come from model metadata (quoted), values are bound parameters: nothing from outside reaches the text.
    return "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(model._meta.db_table), ", ".join(quote(c) for c in columns), ", ".join(["%s"] * len(columns))
    )


def _pre_save(field: models.Field[Any, Any], how: int, row: models.Model, now: datetime) -> Any:
    if how == READ:
        return getattr(row, field.attname)
    if how == STAMP:
        setattr(row, field.attname, now)
        return now
    return field.pre_save(row, True)


class PreparedInsert:
    """An INSERT of ``rows`` with its values computed now (pre_save: timestamps, encryption), executed later: the CPU
    work done before the write transaction opens, only the statement inside it."""

    def __init__(self, model: type[models.Model], rows: Sequence[models.Model]) -> None:
        connection = connections[DEFAULT_DB_ALIAS]  # the thread's connection itself: the proxy costs a lookup per value
        self.model, self.rows = model, rows
        preparers, self.sql = _statement(model, connection)
        now = timezone.now()
        self.values = [[convert(_pre_save(f, how, row, now)) for f, how, convert in preparers] for row in rows]

    def execute(self) -> None:
        if not self.rows:
            return
        connection = connections[DEFAULT_DB_ALIAS]
        with connection.cursor() as cursor:
            cursor.executemany(self.sql, self.values)
        for row in self.rows:
            row._state.adding = False
            row._state.db = connection.alias


def insert(model: type[models.Model], rows: Sequence[models.Model]) -> None:
    """INSERT ``rows`` (instances of ``model`` with their primary key set), signals not sent, like bulk_create."""
    PreparedInsert(model, rows).execute()


class PreparedDictInsert:
    """An INSERT of rows given as {attname: value} (defaults for the rest), no model instances built (a batch writes
    thousands of audit events): values computed now, the statement run later by ``execute``, which answers the rows'
    auto-increment ids, in order, read back through the unique UUID column ``by``."""

    def __init__(self, model: type[models.Model], rows: Sequence[dict[str, Any]], *, by: str) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        self.model, self.fields = model, _fields(model)
        preparers = [(f.attname, f.get_default, db_value_converter(f, connection)) for f in self.fields]
        self.position = [f.attname for f in self.fields].index(by)
        self.values = []
        for row in rows:
            row.setdefault(by, uuid7())
            self.values.append([convert(row[name] if name in row else default()) for name, default, convert in preparers])

    def execute(self) -> list[int]:
        if not self.values:
            return []
        connection = connections[DEFAULT_DB_ALIAS]
        model, keys = self.model, [v[self.position] for v in self.values]
        quote = connection.ops.quote_name
        by_column, pk_column = quote(str(self.fields[self.position].column)), quote(str(model._meta.pk.column))
        ids: dict[Any, int] = {}
        with connection.cursor() as cursor:
            cursor.executemany(_insert_sql(model, [str(f.column) for f in self.fields]), self.values)
            for start in range(0, len(keys), 500):  # under every backend's limit of bound parameters
                chunk = keys[start : start + 500]
                # Identifiers from model metadata, quoted; the keys are bound parameters.
                cursor.execute(
                    "SELECT {}, {} FROM {} WHERE {} IN ({})".format(  # noqa: S608
                        by_column, pk_column, quote(model._meta.db_table), by_column, ", ".join(["%s"] * len(chunk))
                    ),
                    chunk,
                )
                ids.update(cursor.fetchall())
        if len(ids) != len(keys):
            raise RuntimeError(f"{model._meta.label}: inserted rows not found again")
        return [ids[key] for key in keys]


def insert_values(model: type[models.Model], columns: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """INSERT plain tuples already in database form (no model instances): for link tables of plain ids."""
    if not values:
        return
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.executemany(_insert_sql(model, columns), values)
