"""Strict YAML files validated by pydantic models, with errors that name FILE:LINE.

Used for the daemon config and the web config. Promises:

- YAML is read with a ``SafeLoader`` subclass only (no Python tags, no code execution);
  duplicate keys are an error, not "last one wins".
- Every error is one line ``FILE:LINE: where: what``, where *where* is the dotted path of the
  key (``capture.snaplen``). Messages never echo the offending value, so a secret pasted in
  the wrong place does not end up in a log.
- ``load_model`` raises ``YamlModelError`` carrying all errors of the file at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

MAX_FILE_BYTES = 1 << 20

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are re-validated on copy."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class YamlModelError(Exception):
    """A file that does not parse or validate; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (the later one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                duplicate = False
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            with contextlib.suppress(TypeError):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _line_table(
    node: yaml.Node | None, path: Loc, lines: dict[Loc, int], seen: set[int] | None = None
) -> None:
    # An aliased node is walked once: "billion laughs" aliases must not cost exponential time.
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_table(value_node, (*path, key), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _line_table(item, (*path, index), lines, seen)


def parse_yaml(text: str, name: str) -> tuple[Any, dict[Loc, int]]:
    """Parse one YAML document; returns the data and a table (key path) -> line number."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.context_mark is not None and error.problem:
            started = error.context_mark.line + 1
            if started != line:
                problem += f" ({error.context} on line {started})"
        raise YamlModelError([f"{name}:{line}: {problem}"]) from None
    except yaml.YAMLError as error:
        raise YamlModelError([f"{name}:1: invalid YAML ({type(error).__name__})"]) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    _line_table(node, (), lines)
    return data, lines


def line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return 1


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind; expected one of {error['ctx']['expected_tags']}"
    message = str(error["msg"])
    # pydantic prefixes messages raised by our validators with "Value error, "
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def validate(
    model: type[M],
    data: Any,
    lines: dict[Loc, int],
    name: str,
    clean_loc: Callable[[tuple[Any, ...]], Loc] | None = None,
) -> M:
    """Validate parsed YAML against ``model``; errors as ``FILE:LINE: key: message``.

    ``clean_loc`` rewrites pydantic's error paths into key paths of the file (a model with
    discriminated unions adds tag names to them)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise YamlModelError([f"{name}:1: the file must be a mapping of keys to values"])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        found: list[tuple[int, str]] = []
        for item in error.errors(include_url=False, include_input=False):
            loc: Loc = clean_loc(tuple(item["loc"])) if clean_loc else tuple(item["loc"])
            line = line_of(loc, lines)
            found.append((line, f"{name}:{line}: {dotted(loc)}: {_message(item)}"))
        found.sort(key=lambda pair: pair[0])  # stable: same-line errors keep pydantic's order
        raise YamlModelError([message for _, message in found]) from None


def load_model(model: type[M], path: Path) -> M:
    """Read, parse and validate ``path``; every failure is a ``YamlModelError``."""
    name = str(path)
    data, lines = parse_yaml(read_text(path), name)
    return validate(model, data, lines, name)


def read_text(path: Path) -> str:
    """A YAML file's text: bounded in size, UTF-8; failures are one-line ``YamlModelError``s."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise YamlModelError([f"{name}: cannot read: {reason}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlModelError([f"{name}: larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise YamlModelError([f"{name}:{line}: not valid UTF-8"]) from None
    return text
