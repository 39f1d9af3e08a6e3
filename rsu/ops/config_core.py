"""Loading and validating the YAML configuration: every error at once, each naming its path.

The schema itself lives in :mod:`rsu.ops.config` (pydantic models, one per section). This module
turns YAML text into a validated model, or into a list of :class:`ConfigIssue` such as::

    services.tlm.rate_limit_hz: expected a number > 0 and <= 50, found 0
    transports[1].password_file: file not found: /etc/rsu/mqtt.pass
    api.prot: unknown setting (expected one of: host, port, ...)

Secrets (MQTT password, private keys) are never inline: the config names files, and the
loader only checks that they exist and are readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml

T = TypeVar("T", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """A configuration that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None):
        self.issues = issues
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(str(i) for i in issues))


def format_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


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


def duration(lo: float, hi: float) -> Any:
    """A duration (number of seconds or "500ms", "5m"...) within lo..hi seconds, for pydantic models."""
    return Annotated[float, pydantic.BeforeValidator(parse_duration), pydantic.Field(ge=lo, le=hi)]


def _message(err: dict, model: type[pydantic.BaseModel]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    found = _found(err.get("input"))
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
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
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, found {found}"
    msg = err["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.replace("input should be", "expected")
    return f"{msg}, found {found}"


def _bounds(model: type[pydantic.BaseModel], loc: tuple) -> list[str]:
    """The range constraints of the field at ``loc`` ([">= 1", "<= 16384"]); [] if not found."""
    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        info = fields[part]
        current = _model_in(info.annotation)
    out = []
    for meta in getattr(info, "metadata", ()):
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{op} {value:g}" if isinstance(value, float) else f"{op} {value}")
    return out


def _known_fields(model: type[pydantic.BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the model at ``loc`` (for 'unknown setting' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        ann = fields[part].annotation
        current = _model_in(ann)
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else None


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
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        issues = []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            message = _message(err, model)
            if err["type"] == "extra_forbidden":
                known = _known_fields(model, loc)
                if known:
                    message += f" (expected one of: {', '.join(known)})"
            issues.append(ConfigIssue(format_path(loc), message))
        raise ConfigError(issues, source) from None


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
