"""Serializer fields that accept exactly what the OpenAPI schema says they accept.

DRF's fields are lenient where the schema is not: a CharField turns ``5`` or ``true`` into a
string, a BooleanField takes ``"yes"``, an IntegerField takes ``"1.0"``, and a ChoiceField of
integers takes ``"1"``. They also refuse strings the schema allows: one with a NUL character (which
PostgreSQL cannot store), or one of whitespace only where a value is required. Schema fuzzing
(``scripts/fuzz.sh``) finds every such gap, and clients generated from the schema trip over them,
so input fields here take only their JSON type, and text fields publish a ``pattern`` that states
the two string rules (``utils.schema.StrictCharFieldExtension``).
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty

from utils.exceptions import ValidationFailed

# No NUL anywhere (PostgreSQL cannot store it), and where a value is required at least one
# character that str.strip() keeps. JSON Schema patterns are ECMA-262, whose ``\s`` differs from
# Python's (U+001C..U+001F, U+0085, U+FEFF), so the whitespace class is spelt out: exactly
# the characters for which str.isspace() is true.
NO_NUL_PATTERN = r"^[^\u0000]+$"
_SPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
INTEGER_RE = re.compile(r"-?[0-9]+")


class _StringAsSent(serializers.CharField):
    """Only JSON strings (DRF would turn numbers or booleans into text), and ``max_length`` counted
    on the string as sent, like the schema's maxLength (DRF counts after trimming whitespace)."""

    def run_validation(self, data: Any = empty) -> Any:
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictCharField(_StringAsSent):
    pass


class StrictEmailField(_StringAsSent, serializers.EmailField):
    pass


class _QueryValue(serializers.Field):
    """For query strings, read as the schema says: ``?x=`` is an empty value to validate (DRF reads
    it as absent), and a repeated parameter is a list, which no scalar field accepts (DRF takes the
    last value)."""

    def get_value(self, dictionary: Any) -> Any:
        values = dictionary.getlist(self.field_name) if hasattr(dictionary, "getlist") else []
        if len(values) > 1:
            return values
        return dictionary.get(self.field_name, empty)


class QueryCharField(_QueryValue, StrictCharField):
    pass


class QueryChoiceField(_QueryValue, serializers.ChoiceField):
    pass


class QueryIntegerField(_QueryValue, serializers.IntegerField):
    """An integer from a query string: decimal digits with an optional minus, nothing else
    (DRF would also take ``1.0``, and ``int()`` alone would take ``"١"`` or ``" 1"``)."""

    def to_internal_value(self, data: Any) -> int:
        digits = isinstance(data, str) and INTEGER_RE.fullmatch(data)
        if isinstance(data, bool) or not (isinstance(data, int) or digits):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only (DRF also takes ``"yes"``, ``"1"``, ``0`` …)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices, of the choice's own type (DRF matches ``"1"`` to the choice ``1``)."""

    def to_internal_value(self, data: Any) -> Any:
        for choice in self.choices:
            if type(choice) is type(data) and choice == data:
                return choice
        self.fail("invalid_choice", input=data)


def query_value(params: Any, name: str) -> str | None:
    """The one value of a query parameter (None if absent); a repeated one is a 400."""
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationFailed("Invalid input.", errors={name: ["Give this parameter once."]})
    return values[0] if values else None


def parse_query_int(raw: str | None, *, name: str, minimum: int | None = None) -> int | None:
    """A query parameter that must be an integer (``minimum`` or more) when present; None if absent."""
    if raw is None:
        return None
    if not INTEGER_RE.fullmatch(raw) or (minimum is not None and int(raw) < minimum):
        expected = "An integer is expected." if minimum is None else f"An integer of at least {minimum} is expected."
        raise ValidationFailed("Invalid input.", errors={name: [expected]})
    return int(raw)
