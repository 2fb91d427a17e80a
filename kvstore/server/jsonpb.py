"""Protobuf messages as etcd's grpc-gateway writes and reads them as JSON.

etcd's gateway marshals with golang/protobuf's jsonpb set to proto field names
(``OrigName``) and without ``EmitDefaults``; clients parse what that produces, so this
module reproduces it byte for byte rather than using ``json_format.MessageToJson`` (which
orders fields by number, not declaration, and spaces its output):

- fields in the order the .proto declares them, no whitespace;
- a field at its default (0, "", false, empty list, unset message) is left out, except the
  member of a oneof that is set, which is always written;
- 64-bit integers as JSON strings, 32-bit ones as numbers, bytes as padded standard
  base64, enums by name;
- strings escaped as Go's encoding/json does (``<``, ``>``, ``&``, U+2028 and U+2029 as
  ``\\u`` escapes).

Reading is jsonpb's: proto or JSON (lowerCamel) field names, 64-bit integers as strings or
numbers, standard or URL-safe base64, enums by name or number, unknown fields ignored.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

_F = FieldDescriptor
_QUOTED = frozenset(
    {
        _F.TYPE_INT64,
        _F.TYPE_UINT64,
        _F.TYPE_SINT64,
        _F.TYPE_FIXED64,
        _F.TYPE_SFIXED64,
    }
)
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_NEEDS_ESCAPE = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029]')


class JsonError(ValueError):
    """The body is not JSON of the request's message type; the text says why."""


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def quote(text: str) -> str:
    """``text`` as a JSON string, escaped as Go's encoding/json escapes it."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def _scalar(field: FieldDescriptor, value: object) -> str:  # noqa: PLR0911 (one per kind)
    kind = field.type
    if kind in _QUOTED:
        return f'"{value}"'
    if kind == _F.TYPE_STRING:
        return quote(cast(str, value))
    if kind == _F.TYPE_BYTES:
        return '"' + base64.b64encode(cast(bytes, value)).decode("ascii") + '"'
    if kind == _F.TYPE_BOOL:
        return "true" if value else "false"
    if kind == _F.TYPE_ENUM:
        assert field.enum_type is not None
        named = field.enum_type.values_by_number.get(cast(int, value))
        return quote(named.name) if named is not None else str(value)
    if kind == _F.TYPE_MESSAGE:
        return dumps(cast(Message, value))
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return json.dumps(value)
    return str(value)


_Plan = tuple[tuple[FieldDescriptor, str, bool, str | None, bool], ...]
_PLANS: dict[str, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    """Per message type, once: (field, name, repeated, oneof, is message) in declaration
    order."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        rows = []
        for field in descriptor.fields:
            entry = field.message_type
            if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
                raise TypeError(f"{field.full_name}: map fields do not occur in the etcd v3 API")
            oneof = field.containing_oneof
            rows.append(
                (
                    field,
                    field.name,
                    field.is_repeated,
                    oneof.name if oneof is not None else None,
                    field.type == _F.TYPE_MESSAGE,
                )
            )
        plan = _PLANS[descriptor.full_name] = tuple(rows)
    return plan


def dumps(message: Message) -> str:
    """``message`` as etcd's gateway writes it."""
    parts = []
    for field, name, repeated, oneof, is_message in _plan(cast(Descriptor, message.DESCRIPTOR)):
        if repeated:
            items = getattr(message, name)
            if not items:
                continue
            text = "[" + ",".join(_scalar(field, item) for item in items) + "]"
        else:
            if oneof is not None:
                if message.WhichOneof(oneof) != name:
                    continue
            elif is_message and not message.HasField(name):
                continue
            value = getattr(message, name)
            if oneof is None and not is_message and not value:
                continue
            text = _scalar(field, value)
        parts.append(f'"{name}":{text}')
    return "{" + ",".join(parts) + "}"


_JSON_KINDS = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2}")


def _base64_error(text: str) -> str | None:
    """Go's error for a string ``encoding/base64`` (standard, else URL alphabet, padded)
    would refuse, or None."""
    if _BASE64.fullmatch(text) and len(text) % 4 == 0:
        return None
    bad = next(
        (i for i, ch in enumerate(text) if not (ch.isascii() and (ch.isalnum() or ch in "+/-_="))),
        len(text) - len(text) % 4,
    )
    return f"illegal base64 data at input byte {bad}"


def _check_fields(value: dict[str, object], descriptor: Descriptor) -> None:
    """Refuse what Go's decoder refuses and Python's lets through: bytes that are not
    strict base64 (Python drops the characters it does not know) and enum names the enum
    lacks (Python ignores them along with unknown fields)."""
    for key, item in value.items():
        field = descriptor.fields_by_name.get(key) or _by_json_name(descriptor).get(key)
        if field is None or item is None:
            continue
        items = item if field.is_repeated and isinstance(item, list) else [item]
        for one in items:
            if field.type == _F.TYPE_BYTES and isinstance(one, str):
                error = _base64_error(one)
                if error:
                    raise JsonError(error)
            elif field.type == _F.TYPE_ENUM and isinstance(one, str):
                assert field.enum_type is not None
                if one not in field.enum_type.values_by_name:
                    raise JsonError(
                        f"unknown value {quote(one)} for enum {field.enum_type.full_name}"
                    )
            elif field.type == _F.TYPE_MESSAGE and isinstance(one, dict):
                assert field.message_type is not None
                _check_fields(one, field.message_type)


_JSON_NAMES: dict[str, dict[str, FieldDescriptor]] = {}


def _by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    names = _JSON_NAMES.get(descriptor.full_name)
    if names is None:
        names = _JSON_NAMES[descriptor.full_name] = {f.json_name: f for f in descriptor.fields}
    return names


def from_value(value: object, message: M) -> M:
    """Fill ``message`` from one decoded JSON value (``null`` leaves it empty)."""
    if value is None:
        return message
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "value")
        raise JsonError(
            f"json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage"
        )
    _check_fields(value, cast(Descriptor, message.DESCRIPTOR))
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise JsonError(str(exc)) from None
    return message


class StreamDecoder:
    """Splits a byte stream into consecutive JSON values, as Go's ``json.Decoder`` reads
    a request body: values may be separated by whitespace or nothing at all."""

    def __init__(self) -> None:
        self._buffer = ""
        self._pending = b""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[object]:
        """Add ``data``; return every value now complete."""
        raw = self._pending + data
        try:
            text = raw.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as exc:
            if exc.start < len(raw) - 3:
                raise JsonError("invalid UTF-8 in request body") from None
            text, self._pending = raw[: exc.start].decode("utf-8"), raw[exc.start :]
        self._buffer += text
        values: list[object] = []
        while True:
            stripped = self._buffer.lstrip()
            if not stripped:
                self._buffer = ""
                return values
            try:
                value, end = self._decoder.raw_decode(stripped)
            except json.JSONDecodeError as exc:
                if _incomplete(stripped, exc):
                    self._buffer = stripped
                    return values
                raise JsonError(f"invalid JSON: {exc.msg} at offset {exc.pos}") from None
            values.append(value)
            self._buffer = stripped[end:]

    def finish(self) -> None:
        """The stream ended: anything left over is a truncated value."""
        if self._buffer.strip() or self._pending:
            raise JsonError("unexpected EOF")


def _incomplete(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether the value may just not have arrived whole yet: the decoder stopped at the
    end of the text, inside a string, in an escape near the end, or in a literal cut short."""
    if exc.pos >= len(text) or exc.msg.startswith("Unterminated string"):
        return True
    rest = text[exc.pos :]
    if "escape" in exc.msg and len(rest) <= 6:
        return True
    return any(word.startswith(rest) for word in ("true", "false", "null"))


def loads_first(body: bytes, message: M) -> M:
    """The first JSON value of a unary request body, as the gateway decodes it: an empty
    body is the empty request, anything after the first value is ignored."""
    try:
        text = body.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        raise JsonError("invalid UTF-8 in request body") from None
    if not text:
        return message
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        if _incomplete(text, exc):
            raise JsonError("unexpected EOF") from None
        raise JsonError(f"invalid JSON: {exc.msg} at offset {exc.pos}") from None
    return from_value(value, message)
