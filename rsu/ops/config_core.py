"""Loading and validating the YAML configuration: every error at once, each naming its path.

The schema itself lives in :mod:`rsu.ops.config` (pydantic models, one per section). This module
turns YAML text into a validated model, or into a list of :class:`ConfigIssue` such as::

    services.tlm.rate_limit_hz: expected a number > 0 and <= 50, found 0
    transports[1].password_file: file not found: /etc/rsu/mqtt.pass
    api.prot: unknown setting (expected one of: host, port, ...)

There is one :class:`ConfigError` for the whole project. The layers' own config classes (transport
entries, integrations) are pydantic dataclasses made with :func:`config_dataclass` and the checkers here
(:func:`integer`, :func:`number`, :func:`check`, :class:`Problems` for checks that span fields), so they
validate inside the same pass as the file and their errors carry the same paths.

Secrets (MQTT password, private keys) are never inline: the config names files, and the
loader only checks that they exist and are readable.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import pydantic
import yaml
from pydantic_core import PydanticCustomError

T = TypeVar("T", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


class ConfigError(ValueError):
    """A configuration that cannot be used; ``issues`` lists every problem found.

    The one configuration error of the project: the whole file (:mod:`rsu.ops.config`), a transport
    entry (:mod:`rsu.transports.config`), an integration (:mod:`rsu.integrations.config`) and the PKI
    client section all raise it. ``ConfigError("field: reason")`` is the short form of one issue."""

    def __init__(self, issues: list[ConfigIssue] | str, source: str | None = None):
        if isinstance(issues, str):
            path, sep, message = issues.partition(": ")
            issues = [ConfigIssue(path, message) if sep else ConfigIssue("", issues)]
        self.issues = issues
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(str(i) for i in issues))


def format_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("["):  # an already formatted index ("[2].name")
            out += str(part)
        else:
            out += ("." if out else "") + str(part)
    return out


# --- errors raised by validators: their reason is kept word for word ----------------------------------------
def invalid(reason: str) -> PydanticCustomError:
    """The error a field validator raises: ``reason`` becomes the issue's message as written."""
    return PydanticCustomError("rsu", "{reason}", {"reason": reason})


class Problems:
    """Issues a model validator finds among its fields, each naming its field, raised together:

    found = Problems()
    if self.key_file and not self.cert_file:
        found.add("key_file", "given without cert_file")
    found.raise_any()
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append((field, reason))

    def raise_any(self) -> None:
        if self.items:
            raise PydanticCustomError(
                "rsu",
                "{reason}",
                {"reason": "; ".join(f"{f}: {r}" for f, r in self.items), "issues": tuple(self.items)},
            )


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``1.5``, ``"500ms"``, ``"2 s"``, ``"5m"``, ``"1h"``, ``"7d"`` -> seconds (for pydantic validators)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1.5, '500ms', '5m', '1h'")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError("expected a duration such as 1.5, '500ms', '5m', '1h'")


Seconds = Annotated[float, pydantic.BeforeValidator(parse_duration)]  # 1.5, "500ms", "5m", "1h", "7d"


def within(lo: float, hi: float) -> Any:
    """The range of a field, as metadata: ``Annotated[Seconds, within(0, 60)]``."""
    return pydantic.Field(ge=lo, le=hi)


def _message(err: Any, model: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    found = _found(err.get("input"))
    if kind == "missing":
        return "missing (required)"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown setting"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bounds = _bounds(model, tuple(err["loc"]))
        if bounds:  # the whole allowed range, not only the side that was crossed
            return f"expected a number {' and '.join(bounds)}, found {found}"
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        limit = next(iter(ctx.values())) if ctx else "?"
        return f"expected a number {op} {limit}, found {found}"
    if kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
        return f"{text}, found {found}" if "found" not in text else text
    if kind == "rsu":
        return str(ctx.get("reason", err["msg"]))
    if kind in ("dataclass_type", "dataclass_exact_type"):
        return f"expected a mapping, found {type(err.get('input')).__name__}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, found {found}"
    msg = err["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.replace("input should be", "expected")
    return f"{msg}, found {found}"


def _bounds(model: Any, loc: tuple) -> list[str]:
    """The range constraints of the field at ``loc`` ([">= 1", "<= 16384"]); [] if not found."""
    _, info = _walk(model, loc)
    out = []
    for meta in getattr(info, "metadata", ()):
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{op} {value:g}" if isinstance(value, float) else f"{op} {value}")
    return out


def _known_fields(model: Any, loc: tuple) -> list[str] | None:
    """Field names of the model at ``loc`` (for 'unknown setting' hints)."""
    fields = _fields_of(_walk(model, loc[:-1])[0])
    return list(fields) if fields else None


def _is_dataclass_at(model: Any, loc: tuple) -> bool:
    """Whether the setting at ``loc`` belongs to a layer's config dataclass (a transport, an integration)."""
    return dataclasses.is_dataclass(_walk(model, loc[:-1])[0])


def _walk(model: Any, loc: tuple) -> tuple[Any, Any]:
    """(the model or dataclass, the FieldInfo) found at ``loc``; (None, None) when ``loc`` leaves the schema."""
    cls, ann, info = model, model, None
    for part in loc:
        if isinstance(part, int):
            continue
        if _is_tag(part):
            cls = _class_in(ann, part)
            continue
        fields = _fields_of(cls)
        if not fields or part not in fields:
            return None, None
        info = fields[part]
        ann = info.annotation
        cls = _class_in(ann)
    return cls, info


def _fields_of(cls: Any) -> dict[str, Any] | None:
    if isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        return cls.model_fields
    return getattr(cls, "__pydantic_fields__", None) if dataclasses.is_dataclass(cls) else None


def _class_in(ann: Any, tag: str | None = None) -> Any:
    """The first model or pydantic dataclass in an annotation (the member tagged ``tag`` of a union)."""
    if tag is not None:
        for meta in getattr(ann, "__metadata__", ()):
            if isinstance(meta, pydantic.Tag) and meta.tag == tag:
                return _class_in(ann.__args__[0])
        for arg in getattr(ann, "__args__", ()) or ():
            found = _class_in(arg, tag)
            if found is not None:
                return found
        return None
    if _fields_of(ann) is not None:
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _class_in(arg)
        if found is not None:
            return found
    return None


def _is_tag(part: Any) -> bool:
    """Union members are tagged ``<name>`` (:func:`tagged`); the tag is not part of the path users write."""
    return isinstance(part, str) and part.startswith("<") and part.endswith(">")


def tagged(key: str, members: dict[str, Any]) -> Any:
    """A union of config classes chosen by the ``key`` setting of the mapping (``type: gn-udp``), for
    pydantic fields: ``list[tagged("type", {"gn-udp": GnUdpConfig, "mqtt": MqttConfig})]``."""
    import typing

    def choose(value: Any) -> str | None:
        if isinstance(value, dict):
            found = value.get(key)
        else:
            found = next((name for name, cls in members.items() if isinstance(value, cls)), None)
        return f"<{found}>" if isinstance(found, str) and found in members else None

    options = tuple(Annotated[cls, pydantic.Tag(f"<{name}>")] for name, cls in members.items())
    # a union built at run time from a tuple: X | Y cannot spell it
    return Annotated[
        typing.Union[options],  # noqa: UP007
        pydantic.Discriminator(  # type: ignore[valid-type]
            choose,
            custom_error_type="rsu_tag",
            custom_error_message="unknown type",
            custom_error_context={"key": key, "expected": ", ".join(members)},
        ),
    ]


def _model_in(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate(model: type[T], data: Any, source: str | None = None) -> T:
    """Validate parsed YAML data against ``model``; raise ConfigError listing every issue."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context=COMPLETE)
    except pydantic.ValidationError as e:
        raise ConfigError(issues_of(e, model), source) from None


def issues_of(error: pydantic.ValidationError, model: Any, prefix: tuple = ()) -> list[ConfigIssue]:
    """Every error of a pydantic validation of ``model`` as ConfigIssues, paths starting with ``prefix``."""
    issues = []
    for err in error.errors():
        walked = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
        )
        loc = tuple(p for p in walked if not _is_tag(p))  # the path as users write it
        if err["type"] == "rsu" and (err.get("ctx") or {}).get("issues"):
            for field, reason in err["ctx"]["issues"]:
                issues.append(ConfigIssue(format_path(prefix + loc + ((field,) if field else ())), reason))
            continue
        if err["type"] == "rsu_tag":  # a union member chosen by a key (tagged): say which key and what it may be
            ctx, given = err.get("ctx") or {}, err.get("input")
            if isinstance(given, dict):
                key = ctx.get("key")
                issues.append(
                    ConfigIssue(
                        format_path(prefix + loc + (key,)),
                        f"expected one of {ctx.get('expected')}, found {_found(given.get(key))}",
                    )
                )
            else:
                issues.append(
                    ConfigIssue(
                        format_path(prefix + loc), f"expected a mapping with a {ctx.get('key')}, found {_found(given)}"
                    )
                )
            continue
        message = _message(err, model)
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            known = _known_fields(model, walked)
            if known is not None and _is_dataclass_at(model, walked):
                message = f"unknown option (known: {', '.join(sorted(known))})"
            elif known:
                message += f" (expected one of: {', '.join(known)})"
        issues.append(ConfigIssue(format_path(prefix + loc), message))
    return issues


def load_yaml(text: str, source: str = "<config>") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "?"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([ConfigIssue("", f"YAML syntax error at {where}: {problem}")], source) from None


def load_yaml_file(path: str | Path) -> Any:
    """The parsed YAML of ``path``; a missing, unreadable or malformed file is a ConfigError naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "file not found")], str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([ConfigIssue("", f"cannot read: {e}")], str(p)) from None
    return load_yaml(text, str(p))


# --- the layers' config dataclasses (transports, integrations): pydantic dataclasses -------------------------
COMPLETE = {"complete": True}  # validation context: the entry is final (from a file), so required parts are checked


def check(fn: Any) -> Any:
    """A BeforeValidator running ``fn(value)``: it returns the value to keep or raises ValueError(reason)."""

    def run(value: Any) -> Any:
        try:
            return fn(value)
        except PydanticCustomError:
            raise
        except ValueError as e:
            raise invalid(str(e)) from None

    return pydantic.BeforeValidator(run)


def ints(lo: int, hi: int, *, optional: bool = False) -> Any:
    """Check of an int within lo..hi (no bools, no strings), for ``Annotated[int, ints(1, 65535)]``:
    "5000000 is not an integer within 1..65535"."""

    def ok(v: Any) -> Any:
        if optional and v is None:
            return v
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"{v!r} is not an integer within {lo}..{hi}")
        return v

    return check(ok)


def floats(lo: float, hi: float, *, lo_open: bool = False, optional: bool = False) -> Any:
    """Check of a finite number within lo..hi (lo excluded when ``lo_open``), for
    ``Annotated[float, floats(0, 3600)]``: "0 is not a number > 0 and <= 3600"."""
    import math

    def ok(v: Any) -> Any:
        if optional and v is None:
            return v
        good = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not good or v > hi or v < lo or (lo_open and v == lo):
            raise ValueError(f"{v!r} is not a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}")
        return float(v)

    return check(ok)


class LayerConfig:
    """Base of a layer's config dataclass (:func:`config_dataclass`): reading a section on its own."""

    PREFIX = ""  # where the section sits in the file, for error paths when no prefix is given

    @classmethod
    def from_dict(cls, data: Any, prefix: str | None = None) -> Self:
        """The config of a (YAML) mapping, checked as complete; ConfigError names ``prefix`` + field."""
        return from_mapping(cls, data, cls.PREFIX if prefix is None else prefix)

    def validate(self, prefix: str | None = None) -> None:
        """Check this config again as complete (required parts such as the RSU position included)."""
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        from_mapping(type(self), values, self.PREFIX if prefix is None else prefix)


C = TypeVar("C", bound=type)


@typing.dataclass_transform(field_specifiers=(dataclasses.field, pydantic.Field))
def config_dataclass(cls: C) -> C:
    """``cls`` (a :class:`LayerConfig`) as a pydantic dataclass of a layer's configuration: unknown keys
    refused, values checked at construction, which raises ConfigError."""
    import pydantic.dataclasses

    settings = pydantic.ConfigDict(extra="forbid")
    dc: Any = pydantic.dataclasses.dataclass(cls, config=settings)  # type: ignore[call-overload]
    built = dc.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            built(self, *args, **kwargs)
        except pydantic.ValidationError as e:
            raise ConfigError(issues_of(e, dc)) from None

    dc.__init__ = __init__
    return dc  # type: ignore[no-any-return]


def from_mapping(cls: Any, data: Any, prefix: str = "") -> Any:
    """A config dataclass from a (YAML) mapping, checked as complete; ConfigError names ``prefix`` + field."""
    where = (prefix.rstrip("."),) if prefix.rstrip(".") else ()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(format_path(where) or "(section)", f"expected a mapping, found {type(data).__name__}")]
        )
    try:
        return _adapter(cls).validate_python(data, context=COMPLETE)
    except pydantic.ValidationError as e:
        raise ConfigError(issues_of(e, cls, where)) from None


@functools.cache
def _adapter(cls: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(cls)


def is_complete(info: Any) -> bool:
    return bool(info.context and info.context.get("complete"))
