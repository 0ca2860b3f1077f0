"""Branch conditions: a tiny, safe expression language over dialplan variables.

``balance > 100 and verified == true`` - names, numbers, strings, true/false/null, comparisons,
and/or/not. Parsed with Python's ``ast`` and evaluated over a whitelist of node types: no attribute
access, no calls, no subscripts, so nothing in a dialplan can reach Python internals.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable
from typing import Any

_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_WORDS = {"true": "True", "false": "False", "null": "None"}


class ConditionError(ValueError):
    """The condition is not valid; the message says what is wrong."""


@functools.lru_cache(maxsize=4096)  # conditions are few and re-evaluated on every call
def parse(text: str) -> ast.expr:
    """The checked syntax tree of ``text``; ConditionError says what is not allowed."""
    if len(text) > 500:
        raise ConditionError("condition longer than 500 characters")
    source = re.sub(r"\b(true|false|null)\b", lambda m: _WORDS[m.group(1)], text)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"cannot read condition {text!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(
            node,
            (
                ast.BoolOp,
                ast.And,
                ast.Or,
                ast.UnaryOp,
                ast.Not,
                ast.Compare,
                ast.Name,
                ast.Load,
                ast.Constant,
                ast.List,
                ast.Tuple,
                *_CMP,
            ),
        ):
            raise ConditionError(f"{type(node).__name__} is not allowed in a condition ({text!r})")
    return tree


def names(text: str) -> set[str]:
    """Variables a condition reads (for the checker's undefined-variable rule)."""
    return {
        n.id
        for n in ast.walk(parse(text))
        if isinstance(n, ast.Name) and n.id not in ("True", "False", "None")
    }


def evaluate(text: str, variables: dict[str, Any]) -> bool:
    """Is the condition true for these variables? (Type mismatches are simply false.)"""
    return bool(_eval(parse(text), variables))


def _eval(node: ast.expr, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, env.get(node.id))
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, env) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, env)
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    assert isinstance(node, ast.Compare)
    left = _eval(node.left, env)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _eval(right_node, env)
        try:
            if not _CMP[type(op)](left, right):
                return False
        except TypeError:
            return False  # comparing text with a number, or a missing value: simply not true
        left = right
    return True
