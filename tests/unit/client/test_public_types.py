"""Every type in the client's public signatures is importable from ``htcgrid`` itself: the
parameters and returns of every public method and property, and the fields of every public
document, dataclass and error, followed through each type they name (no network)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any

import mypy_boto3_dynamodb
import mypy_boto3_s3
import mypy_boto3_sqs
import pydantic

import htcgrid

#: Packages whose types a user of the client meets only through it.
OURS = ("htcgrid", "htcgrid_core")


#: The boto3 client types the core names only for type checkers (``if TYPE_CHECKING``), for
#: resolving its annotations here: not ours, so never required in ``htcgrid``.
CLIENT_TYPES = {
    name: getattr(module, name)
    for module in (mypy_boto3_dynamodb, mypy_boto3_s3, mypy_boto3_sqs)
    for name in module.__all__
}


def is_ours(kind: type) -> bool:
    return kind.__module__.partition(".")[0] in OURS


def classes_in(hint: Any) -> Iterator[type]:
    """Every class a type hint names: ``dict[str, list[TaskResult]] | None`` names
    ``TaskResult`` (and ``dict``, ``str``, ``list``...)."""
    if isinstance(hint, typing.TypeVar):
        if hint.__bound__ is not None:
            yield from classes_in(hint.__bound__)
        return
    origin = typing.get_origin(hint)
    if origin is not None:
        if isinstance(origin, type):
            yield origin
        for argument in typing.get_args(hint):
            yield from classes_in(argument)
        return
    if isinstance(hint, (list, tuple)):  # Callable's parameter list
        for argument in hint:
            yield from classes_in(argument)
        return
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        yield hint


def hints_of(kind: type) -> Iterator[Any]:
    """The type hints of a class's public surface: its fields, and the parameters and returns
    of its public methods and properties (its own and its own bases', not pydantic's,
    Exception's or Enum's)."""
    if issubclass(kind, enum.Enum):
        return
    if issubclass(kind, pydantic.BaseModel):
        for field in kind.model_fields.values():
            yield field.annotation
    elif dataclasses.is_dataclass(kind):
        yield from typing.get_type_hints(kind).values()
    for owner in kind.__mro__:
        if not is_ours(owner):
            continue
        for name, member in vars(owner).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(member, property):
                member = member.fget
            elif isinstance(member, (classmethod, staticmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                yield from typing.get_type_hints(member, localns=CLIENT_TYPES).values()


def test_every_type_in_a_public_signature_is_exported_from_htcgrid() -> None:
    exported = {name: getattr(htcgrid, name) for name in htcgrid.__all__}
    todo = [kind for kind in exported.values() if isinstance(kind, type)]
    seen: set[type] = set()
    named_by: dict[type, type] = {}
    while todo:
        kind = todo.pop()
        if kind in seen:
            continue
        seen.add(kind)
        for hint in hints_of(kind):
            for named in classes_in(hint):
                if is_ours(named) and named not in seen:
                    named_by.setdefault(named, kind)
                    todo.append(named)
    missing = {
        f"{named.__module__}.{named.__qualname__} (in {named_by[named].__qualname__})"
        for named in named_by
        if exported.get(named.__name__) is not named
    }
    assert not missing, f"not exported from htcgrid: {sorted(missing)}"


def test_the_walk_follows_methods_fields_and_aliases() -> None:
    # The check above is only as good as its walk: it must reach a type named only in a
    # method's return (Grid.status -> SessionStatus), a dataclass field (Completed.read_error
    # -> TaskError) and a document's field (TaskResult.result -> StoredData).
    reached = {named for hint in hints_of(htcgrid.Grid) for named in classes_in(hint)}
    assert htcgrid.SessionStatus in reached
    reached = {named for hint in hints_of(htcgrid.Completed) for named in classes_in(hint)}
    assert htcgrid.TaskError in reached
    reached = {named for hint in hints_of(htcgrid.TaskResult) for named in classes_in(hint)}
    assert htcgrid.StoredData in reached


def test_every_name_in_all_is_importable_and_every_error_is_a_grid_error() -> None:
    for name in htcgrid.__all__:
        assert hasattr(htcgrid, name), name
        value = getattr(htcgrid, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, htcgrid.GridError), name
