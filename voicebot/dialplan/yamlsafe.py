"""Safe YAML for files admins write: positions on everything, and hostile input refused fast.

On top of PyYAML's composer (which builds nodes with line/column marks but constructs nothing):
* size, nesting depth and expanded-node limits: an alias costs what it expands to, so a
  "billion laughs" file fails after ``max_nodes`` nodes, in milliseconds, not gigabytes;
* only YAML's own tags: ``!!python/object`` and friends are errors, never constructed;
* duplicate keys are errors (PyYAML silently keeps the last one);
* invalid UTF-8 and tab indentation are reported with line:column;
* YAML 1.1 traps are warnings where they change meaning: unquoted yes/no/on/off become booleans,
  unquoted numbers with a leading zero (phone numbers, PINs) become octal or other integers.

``load`` returns plain Python data plus a map from each value's path to its position.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from voicebot.dialplan.yamlcompose import ComposeError, compose
from voicebot.errors import VoicebotError

Path = tuple[str | int, ...]

STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)
_BOOL_WORDS = re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]*[0-9][0-9_]*$")
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


@dataclass(frozen=True)
class Diagnostic:
    """One finding: ``file:line:column: severity: message`` (1-based line and column)."""

    file: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


class YamlError(VoicebotError, ValueError):
    """The file cannot be used; ``diagnostics`` says where and why (file:line:column each)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1_000_000
    max_depth: int = 40
    max_nodes: int = 200_000  # after alias expansion


@dataclass
class Loaded:
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    # unquoted yes/no/on/off by where they are: a warning unless the field is a yes/no setting
    bool_traps: dict[Path, Diagnostic] = field(default_factory=dict)

    def warnings_except(self, is_yes_no: Callable[[Path], bool]) -> list[Diagnostic]:
        """All warnings, leaving out unquoted yes/no where ``is_yes_no`` says a yes/no is expected."""
        traps = [d for path, d in self.bool_traps.items() if not is_yes_no(path)]
        return sorted([*self.warnings, *traps], key=lambda d: (d.line, d.column))

    def where(self, path: Path) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


def load(text: bytes | str, file: str = "<input>", limits: Limits | None = None) -> Loaded:
    """Parse admin YAML; raise YamlError with every problem found before giving up."""
    lim = limits or Limits()
    source = _decode(text, file, lim)
    _check_tabs(source, file)
    try:
        root, aliases = compose(source, lim.max_depth)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = str(exc.problem or exc).split("\n")[0]
        kind = "" if isinstance(exc, ComposeError) else "YAML syntax: "
        raise YamlError([Diagnostic(file, line, col, "error", f"{kind}{problem}")]) from None
    except yaml.YAMLError as exc:
        raise YamlError([Diagnostic(file, 1, 1, "error", f"YAML: {str(exc).splitlines()[0]}")]) from None
    out = Loaded(data=None)
    if root is None:
        return out
    size = _expanded_size(root, {}, lim.max_nodes) if aliases else 0
    if size > lim.max_nodes:
        mark = root.start_mark
        raise YamlError(
            [
                Diagnostic(
                    file,
                    mark.line + 1,
                    mark.column + 1,
                    "error",
                    f"document expands to more than {lim.max_nodes} values "
                    "(aliases used as a 'billion laughs' bomb, or an alias inside its own anchor?)",
                )
            ]
        )
    builder = _Builder(file, lim, out)
    out.data = builder.build(root, (), 0)
    if builder.errors:
        raise YamlError(builder.errors)
    return out


def _decode(text: bytes | str, file: str, lim: Limits) -> str:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > lim.max_bytes:
        raise YamlError(
            [Diagnostic(file, 1, 1, "error", f"file is {len(raw)} bytes; the limit is {lim.max_bytes}")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(
            [Diagnostic(file, line, col, "error", "invalid UTF-8; save the file as UTF-8")]
        ) from None


def _check_tabs(source: str, file: str) -> None:
    errors = []
    for n, line in enumerate(source.splitlines(), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            errors.append(
                Diagnostic(
                    file,
                    n,
                    indent.index("\t") + 1,
                    "error",
                    "tab in indentation; YAML indents with spaces only",
                )
            )
    if errors:
        raise YamlError(errors)


def _expanded_size(node: Node, memo: dict[int, int], cap: int) -> int:
    """Values the node stands for once aliases are expanded, counted over the shared node graph
    (each anchor once), so a bomb is measured in microseconds instead of being built. An alias inside
    its own anchor counts as too many. Recursion depth is bounded by the composer's depth limit."""
    key = id(node)
    if key in memo:
        return memo[key] if memo[key] >= 0 else cap + 1
    memo[key] = -1  # in progress: meeting it again means a cycle
    total = 1
    if isinstance(node, SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, cap)
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, cap) + _expanded_size(v, memo, cap)
    memo[key] = total = min(total, cap + 1)
    return total


class _Builder:
    def __init__(self, file: str, lim: Limits, out: Loaded) -> None:
        self.file, self.lim, self.out = file, lim, out
        self.errors: list[Diagnostic] = []
        self.budget = lim.max_nodes

    def diag(self, node: Node, severity: str, message: str) -> Diagnostic:
        return Diagnostic(self.file, node.start_mark.line + 1, node.start_mark.column + 1, severity, message)

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise YamlError(
                [
                    self.diag(
                        node,
                        "error",
                        f"document expands to more than {self.lim.max_nodes} values "
                        "(aliases used as a 'billion laughs' bomb?)",
                    )
                ]
            )
        if depth > self.lim.max_depth:
            raise YamlError([self.diag(node, "error", f"nesting deeper than {self.lim.max_depth} levels")])
        self.out.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag == "tag:yaml.org,2002:merge":
            self.errors.append(
                self.diag(node, "error", "merge keys (<<) are not supported; write the fields out")
            )
            return None
        if node.tag not in STANDARD_TAGS:
            self.errors.append(self.diag(node, "error", f"tag {node.tag!r} is not allowed; remove it"))
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        result: dict[Any, Any] = {}
        seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, (*path, "<key>"), depth + 1)
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:bool":
                self.errors.append(
                    self.diag(key_node, "error", f"key {key_node.value!r} is read as {key}; quote it")
                )
            if not isinstance(key, str | int | float | bool | type(None)):
                self.errors.append(self.diag(key_node, "error", "keys must be plain values"))
                continue
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.errors.append(
                    self.diag(key_node, "error", f"duplicate key {key!r} (first at line {first})")
                )
                continue
            seen[key] = key_node
            # a field's position is where its key is written: that is where an admin looks
            self.out.positions[(*path, str(key))] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            result[key] = self.build(value_node, (*path, str(key)), depth + 1)
        return result

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        value = yaml.SafeLoader.construct_scalar(_SCALAR_LOADER, node)
        tag = node.tag
        if not node.style:  # plain (unquoted): where YAML 1.1 guesses types
            self._traps(node, path)
        return _construct(node) if tag != "tag:yaml.org,2002:str" else value

    def _traps(self, node: ScalarNode, path: Path) -> None:
        text, tag = node.value, node.tag
        if tag.endswith(":bool") and _BOOL_WORDS.match(text):
            # kept apart: where the field is a yes/no setting, `yes` means what the admin meant
            self.out.bool_traps[path] = self.diag(
                node,
                "warning",
                f"unquoted {text!r} is read as {text.lower() in ('y', 'yes', 'on')}; "
                "quote it if you meant text",
            )
        elif _LEADING_ZERO.match(text):
            meaning = (
                f"the number {_construct(node)}"
                if tag.endswith(":int")
                else f"text here, but the number {int(text.replace('_', ''))} in YAML 1.2 editors"
            )
            self.out.warnings.append(
                self.diag(node, "warning", f"unquoted {text!r} is read as {meaning}; quote it")
            )
        elif _SEXAGESIMAL.match(text) and (tag.endswith(":int") or tag.endswith(":float")):
            self.out.warnings.append(
                self.diag(
                    node,
                    "warning",
                    f"unquoted {text!r} is read as the number {_construct(node)} (base 60); "
                    "quote times like '10:30'",
                )
            )


_SCALAR_LOADER = yaml.SafeLoader("")


def _construct(node: ScalarNode) -> Any:
    return _SCALAR_LOADER.construct_object(node, deep=True)
