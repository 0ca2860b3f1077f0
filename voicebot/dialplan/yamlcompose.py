"""An iterative YAML composer: events -> nodes with marks, with the nesting depth bounded as it goes.

PyYAML's own composers (the pure-Python one and libyaml's, via ``yaml.compose``) recurse once per
nesting level: ``[[[[...`` 100,000 levels deep is a RecursionError in one and a segmentation fault in
the other. Here the nesting is an explicit stack, checked against the limit when each collection
opens, so a hostile file costs one pass of libyaml's (non-recursive) parser and then fails.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

# libyaml's parser is ~5x faster than PyYAML's pure-Python one and gives the same marks.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.SafeLoader("")


class ComposeError(yaml.MarkedYAMLError):
    """Too deep, an unknown alias, or more than one document; ``problem_mark`` says where."""


def compose(source: str, max_depth: int) -> tuple[Node | None, int]:
    """The single document in ``source`` as a node tree (None when empty), and how many aliases
    it uses (only then can it stand for more values than it has nodes)."""
    events = yaml.parse(source, Loader=_LOADER)
    anchors: dict[str, Node] = {}
    stack: list[CollectionNode] = []
    pending_key: list[Node | None] = []  # per open mapping: a key waiting for its value
    root: Node | None = None
    documents = aliases = 0
    for event in events:
        mark: Any = event.start_mark  # libyaml's Mark type; the same fields as PyYAML's
        if isinstance(event, StreamStartEvent | StreamEndEvent):
            continue
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ComposeError(None, None, "a dialplan file holds one YAML document", mark)
            continue
        node: Node | None = None
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise ComposeError(None, None, f"alias *{event.anchor} has no anchor", mark)
            node = anchors[event.anchor]
            aliases += 1
        elif isinstance(event, ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = _resolve(ScalarNode, event.value, event.implicit)
            end: Any = event.end_mark
            node = ScalarNode(tag, event.value, mark, end, style=event.style)
        elif isinstance(event, CollectionStartEvent):
            if len(stack) >= max_depth:
                raise ComposeError(None, None, f"nesting deeper than {max_depth} levels", mark)
            kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
            assert isinstance(event, SequenceStartEvent | MappingStartEvent)
            tag = event.tag
            if tag is None or tag == "!":
                tag = _resolve(kind, None, event.implicit)
            coll = kind(tag, [], mark, None, flow_style=event.flow_style)
            if event.anchor is not None:
                anchors[event.anchor] = coll
            _attach(stack, pending_key, coll)
            stack.append(coll)
            pending_key.append(None)
            if root is None:
                root = coll
            continue
        else:  # a collection's end, or the document's
            if stack and not isinstance(event, yaml.DocumentEndEvent):
                stack.pop().end_mark = event.end_mark
                pending_key.pop()
            continue
        if isinstance(event, ScalarEvent) and event.anchor is not None:
            anchors[event.anchor] = node
        if stack:
            _attach(stack, pending_key, node)
        elif root is None:
            root = node
    return root, aliases


@functools.lru_cache(maxsize=8192)  # admins repeat the same keys and values; resolving is regexes
def _resolve(kind: type[Node], value: str | None, implicit: Any) -> str:
    """YAML's implicit tag for an untagged node (int, bool, str, ...), as yaml.compose would give."""
    tag: str = _RESOLVER.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
    return tag


def _attach(stack: list[CollectionNode], pending_key: list[Node | None], node: Node) -> None:
    if not stack:
        return
    parent = stack[-1]
    if isinstance(parent, SequenceNode):
        parent.value.append(node)
    elif pending_key[-1] is None:
        pending_key[-1] = node
    else:
        parent.value.append((pending_key[-1], node))
        pending_key[-1] = None
