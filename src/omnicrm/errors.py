"""One error tree for omnicrm; the API, console and CLI each render it one way.

::

    OmnicrmError (500)
    ├── ConfigError (500)            settings or mapping files that cannot work
    ├── InputError (400)             a request or file the user sent is wrong
    │   ├── AuthError (401)          missing or unknown write key / API key
    │   ├── PayloadTooLarge (413)    a message or batch over its size limit
    │   └── ImportFileError (400)    a bulk-import file that cannot be read as a whole
    ├── NotFound (404)
    ├── Conflict (409)
    └── Unavailable (503)            back-pressure or a store that is not reachable; retry later

Every message says what happened, where (record and field), and what to do about it.
Several problems found in one input travel together in ``problems``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "ConfigError",
    "Conflict",
    "ImportFileError",
    "InputError",
    "NotFound",
    "OmnicrmError",
    "PayloadTooLarge",
    "Problem",
    "Unavailable",
]


@dataclass(frozen=True)
class Problem:
    """One problem with one place in an input: a message index, a file line, a field."""

    reason: str
    field: str | None = None
    index: int | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.index is not None:
            where.append(f"message {self.index}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass
class OmnicrmError(Exception):
    """Base of every error omnicrm raises on purpose."""

    message: str
    problems: list[Problem] = field(default_factory=list)
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [p.as_dict() for p in self.problems]
        return body


class ConfigError(OmnicrmError):
    status = 500
    code = "config_error"


class InputError(OmnicrmError):
    status = 400
    code = "invalid_request"


class AuthError(InputError):
    status = 401
    code = "unauthorized"


class PayloadTooLarge(InputError):
    status = 413
    code = "payload_too_large"


class ImportFileError(InputError):
    code = "invalid_file"


class NotFound(OmnicrmError):
    status = 404
    code = "not_found"


class Conflict(OmnicrmError):
    status = 409
    code = "conflict"


@dataclass
class Unavailable(OmnicrmError):
    retry_after: int = 5
    status: ClassVar[int] = 503
    code: ClassVar[str] = "unavailable"
