"""Rule expressions: a small, checked subset of Python evaluated column-wise with numpy.

Allowed: names (table columns or rule variables), str/int/float/bool constants, tuples/lists of
constants, `and` `or` `not`, comparisons (== != < <= > >= in, not in), + - * / %, and the
functions abs(). Anything else, or an unknown name, is rejected when the rule file is loaded.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd

FUNCTIONS = {"abs": np.abs}
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.Mod: np.mod}
_CMPOPS = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
           ast.Gt: np.greater, ast.GtE: np.greater_equal}


class ExprError(ValueError):
    """An expression is not valid; the message says why (the loader adds file and rule)."""


def parse(source: str, names: set[str], what: str) -> ast.Expression:
    """Parse and check `source`; every name must be in `names`."""
    try:
        tree = ast.parse(str(source).strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"{what}: syntax error in {source!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in names and node.id not in FUNCTIONS:
                raise ExprError(f"{what}: unknown column or variable {node.id!r} in {source!r}")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise ExprError(f"{what}: only {', '.join(FUNCTIONS)}(x) may be called in {source!r}")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (str, int, float, bool)):
                raise ExprError(f"{what}: constant {node.value!r} not allowed in {source!r}")
        elif isinstance(node, (ast.BinOp)):
            if type(node.op) not in _BINOPS:
                raise ExprError(f"{what}: operator {type(node.op).__name__} not allowed in {source!r}")
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _CMPOPS and not isinstance(op, (ast.In, ast.NotIn)):
                    raise ExprError(f"{what}: comparison {type(op).__name__} not allowed in {source!r}")
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)) and not isinstance(right, (ast.Tuple, ast.List)):
                    raise ExprError(f"{what}: 'in' needs a literal tuple, e.g. x in (0, 1): {source!r}")
        elif isinstance(node, (ast.Tuple, ast.List)):
            if not all(isinstance(e, ast.Constant) for e in node.elts):
                raise ExprError(f"{what}: tuples may hold constants only: {source!r}")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub)):
                raise ExprError(f"{what}: operator {type(node.op).__name__} not allowed in {source!r}")
        elif not isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.Load, ast.Not,
                                   ast.USub, ast.In, ast.NotIn, *_BINOPS, *_CMPOPS)):
            raise ExprError(f"{what}: {type(node).__name__} not allowed in {source!r}")
    return tree


# Kinds of values an expression can have; "num" covers int, float and bool (numpy mixes them).
_NUMERIC = ("int", "float", "bool", "num")


def check_types(tree: ast.Expression, kinds: dict[str, str], what: str, source: str) -> str:
    """The kind ("str", "num", "bool") of a parsed expression whose names have these kinds
    (TABLE_COLUMNS' "str" / "int" / "float" / "bool"); ExprError where an operation does not
    fit its operands (a text compared with a number, abs() or arithmetic on text, ...), which
    would otherwise fail or mislead only when the rule is evaluated."""

    def kind(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            k = kinds.get(node.id, "num")
            return "str" if k == "str" else "bool" if k == "bool" else "num"
        if isinstance(node, ast.Constant):
            return "str" if isinstance(node.value, str) else \
                "bool" if isinstance(node.value, bool) else "num"
        if isinstance(node, (ast.Tuple, ast.List)):
            elts = {kind(e) for e in node.elts}
            if "str" in elts and len(elts) > 1:
                raise ExprError(f"{what}: a tuple mixes text and numbers in {source!r}")
            return "tuple-" + ("str" if "str" in elts else "num")
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                need(v, "a condition")
            return "bool"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                need(node.operand, "a condition")
                return "bool"
            need(node.operand, "a number")
            return "num"
        if isinstance(node, ast.BinOp):
            need(node.left, "a number")
            need(node.right, "a number")
            return "num"
        if isinstance(node, ast.Call):
            if len(node.args) != 1:
                raise ExprError(f"{what}: {node.func.id}() takes one argument in {source!r}")  # type: ignore[attr-defined]
            need(node.args[0], "a number")
            return "num"
        if isinstance(node, ast.Compare):
            left = kind(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = kind(right_node)
                if isinstance(op, (ast.In, ast.NotIn)):
                    if right != "tuple-" + ("str" if left == "str" else "num"):
                        raise ExprError(f"{what}: 'in' compares {_say(left)} with "
                                        f"{_say(right)} in {source!r}")
                elif (left == "str") != (right == "str") or left.startswith("tuple") \
                        or right.startswith("tuple"):
                    raise ExprError(f"{what}: compares {_say(left)} with {_say(right)} in "
                                    f"{source!r}")
                left = right
            return "bool"
        raise ExprError(f"{what}: {type(node).__name__} not allowed in {source!r}")

    def need(node: ast.AST, wanted: str) -> None:
        got = kind(node)
        if got == "str" or got.startswith("tuple"):
            raise ExprError(f"{what}: {ast.unparse(node)!r} is {_say(got)}, not {wanted}, in "
                            f"{source!r}")

    return kind(tree.body)


def _say(kind: str) -> str:
    return {"str": "text", "tuple-str": "a tuple of text", "tuple-num": "a tuple of numbers",
            "": "nothing"}.get(kind, "a number" if kind in _NUMERIC else kind)


def names_in(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS}


def evaluate(tree: ast.Expression, columns: dict[str, Any], variables: dict[str, Any],
             n: int) -> np.ndarray:
    """Evaluate to a bool array of length n (a scalar result is broadcast)."""
    value = _eval(tree.body, columns, variables)
    arr = np.asarray(_plain(value))
    if arr.dtype != bool:
        arr = arr.astype(bool)
    return np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 else arr


def evaluate_scalar(tree: ast.Expression, variables: dict[str, Any]) -> bool:
    return bool(_eval(tree.body, {}, variables))


def _plain(value: Any) -> Any:
    """A text column (Categorical) as an object array, for everything but == != and in."""
    return np.asarray(value, dtype=object) if isinstance(value, pd.Categorical) else value


def _compare_text(op: ast.cmpop, left: Any, right: Any) -> np.ndarray | None:
    """== / != / in on a text column held as a Categorical: decided once per category and
    compared on the codes. None when neither side is one (the caller compares values)."""
    if not (isinstance(left, pd.Categorical) or isinstance(right, pd.Categorical)):
        return None
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(left, pd.Categorical):
            return None
        hit = np.asarray(left.isin(list(right)))
        return ~hit if isinstance(op, ast.NotIn) else hit
    if not isinstance(op, (ast.Eq, ast.NotEq)):
        return None
    if isinstance(left, pd.Categorical) and isinstance(right, pd.Categorical):
        # codes compare only over the same categories in the same order (unordered
        # categoricals with one set of categories in another order are equal dtypes)
        if left.categories.equals(right.categories):
            same = left.codes == right.codes
        else:
            same = np.asarray(left, dtype=object) == np.asarray(right, dtype=object)
    else:
        cat, other = (left, right) if isinstance(left, pd.Categorical) else (right, left)
        if isinstance(other, np.ndarray):
            same = np.asarray(cat, dtype=object) == other
        else:
            # one constant: its category code, or no row at all
            where = np.flatnonzero(np.asarray(cat.categories, dtype=object) == other)
            same = cat.codes == where[0] if len(where) else np.zeros(len(cat), dtype=bool)
    return ~same if isinstance(op, ast.NotEq) else same


def _eval(node: ast.AST, cols: dict[str, Any], vars_: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return cols[node.id] if node.id in cols else vars_[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    if isinstance(node, ast.BoolOp):
        parts = [np.asarray(_plain(_eval(v, cols, vars_)), dtype=bool) for v in node.values]
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = parts[0]
        for p in parts[1:]:
            out = fn(out, p)
        return out
    if isinstance(node, ast.UnaryOp):
        v = _plain(_eval(node.operand, cols, vars_))
        return np.logical_not(np.asarray(v, dtype=bool)) if isinstance(node.op, ast.Not) else -_number(v)
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_number(_plain(_eval(node.left, cols, vars_))),
                                      _number(_plain(_eval(node.right, cols, vars_))))
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](_number(_plain(_eval(node.args[0], cols, vars_))))  # type: ignore[attr-defined]
    if isinstance(node, ast.Compare):
        left = _eval(node.left, cols, vars_)
        out: Any = True
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, cols, vars_)
            coded = _compare_text(op, left, right)
            if coded is not None:
                out = np.logical_and(out, coded)
                left = right
                continue
            left, right = _plain(left), _plain(right)
            if isinstance(op, (ast.In, ast.NotIn)):
                if isinstance(left, np.ndarray):
                    res = np.isin(left, np.asarray(right, dtype=left.dtype if left.dtype != object else object))
                else:
                    res = left in right
                if isinstance(op, ast.NotIn):
                    res = np.logical_not(res)
            else:
                res = _CMPOPS[type(op)](np.asarray(left, dtype=object) if _is_text(left, right) else left,
                                        right)
            out = np.logical_and(out, res)
            left = right
        return out
    raise ExprError(f"cannot evaluate {type(node).__name__}")  # parse() rejects these first


def _number(value: Any) -> np.ndarray:
    """A value for arithmetic: booleans as 0/1 (numpy refuses - and abs-of-negation on bools)."""
    arr = np.asarray(value)
    return arr.astype(np.int64) if arr.dtype == bool else arr


def _is_text(left: Any, right: Any) -> bool:
    return isinstance(right, str) or (isinstance(left, np.ndarray) and left.dtype == object)
