"""The public surface itself: every public name is documented, and the package exports
what its stubs and README promise."""

from __future__ import annotations

import inspect

import file_orbit as fo
from file_orbit import _native, errors


def _public_members(cls: type) -> list[tuple[str, object]]:
    return [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, (property, classmethod, staticmethod)))
    ]


def test_every_public_name_has_a_docstring() -> None:
    undocumented = []
    for name in fo.__all__:
        value = getattr(fo, name)
        if isinstance(value, str) or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue  # constants and type aliases (documented in their modules)
        doc = inspect.getdoc(value) or ""
        if not doc or doc.startswith(f"{name}("):  # a dataclass's generated signature
            undocumented.append(name)
        if inspect.isclass(value):
            for member_name, member in _public_members(value):
                target = member.fget if isinstance(member, property) else member
                if not inspect.getdoc(target):
                    undocumented.append(f"{name}.{member_name}")
    for cls in (_native.NativeOrbit, _native.NativeTransfer, _native.NativeService):
        for member_name in dir(cls):
            if not member_name.startswith("_") and not getattr(cls, member_name).__doc__:
                undocumented.append(f"_native.{cls.__name__}.{member_name}")
    assert not undocumented, undocumented
    assert fo.__doc__ and errors.__doc__


def test_every_error_kind_of_the_core_has_a_class() -> None:
    for kind in (
        "Library",
        "InvalidInput",
        "NotFound",
        "Cancelled",
        "Authentication",
        "PermissionDenied",
        "Connection",
        "Remote",
        "Protocol",
        "Store",
    ):
        error = errors._from_kind(kind, kind in ("Remote", "Connection"), "ctx", "msg")
        assert type(error) is not fo.FileOrbitError and isinstance(error, fo.FileOrbitError)
        assert (error.kind, error.context, error.message, str(error)) == (kind, "ctx", "msg", "ctx: msg")
        assert error.field is None
    named = errors._from_kind("InvalidInput", False, "job request", "must be at least 1", "retry.max_attempts")
    assert isinstance(named, fo.ConfigError) and named.field == "retry.max_attempts"
    assert str(named) == "job request: retry.max_attempts: must be at least 1"
    assert isinstance(errors._from_kind("Connection", True, "", "x"), ConnectionError)
    assert type(errors._from_kind("SomethingNew", False, "", "x")) is fo.FileOrbitError
