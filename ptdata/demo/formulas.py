"""Fixture formulas: the `let` tables of fixture entries, whose values are drawn and derived in order.

A formula is a Python expression limited to literals, names, arithmetic, comparisons, conditionals, list
comprehensions, subscripts, methods of str and date values and calls of the functions listed at the end. The
fixtures ship with the package like its code; the evaluator keeps their formulas to these few constructs (no
builtins, no other attributes) so that the data stays data. Every draw happens in the order Python would
evaluate the expression, which is what keeps the output identical to the generator the formulas came from."""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import random
from collections import ChainMap
from collections.abc import Callable, Mapping
from functools import cache, partial
from typing import Any

from ptdata.demo import common, people

_BINARY: dict[type, Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_BINARY |= {ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt}
_COMPARE |= {ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b}
_COMPARE[ast.NotIn] = lambda a, b: a not in b


@cache
def _parse(expr: str) -> ast.expr:
    return ast.parse(expr, mode="eval").body


def _ev(node: ast.expr, env: ChainMap[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return env[name]
        case ast.List(elts=items):
            return [_ev(x, env) for x in items]
        case ast.Tuple(elts=items):
            return tuple(_ev(x, env) for x in items)
        case ast.BinOp(left=a, op=op, right=b):
            return _BINARY[type(op)](_ev(a, env), _ev(b, env))
        case ast.UnaryOp(op=ast.USub(), operand=a):
            return -_ev(a, env)
        case ast.UnaryOp(op=ast.Not(), operand=a):
            return not _ev(a, env)
        case ast.BoolOp(op=op, values=values):
            for v in values:
                result = _ev(v, env)
                if bool(result) is isinstance(op, ast.Or):
                    break
            return result
        case ast.Compare(left=a, ops=ops, comparators=rest):
            left = _ev(a, env)
            for op, b in zip(ops, rest, strict=True):
                right = _ev(b, env)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        case ast.ListComp(elt=elt, generators=generators):
            return _comprehension(elt, generators, env)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _ev(body if _ev(test, env) else orelse, env)
        case ast.Subscript(value=value, slice=ast.Slice(lower=lo, upper=hi)):
            return _ev(value, env)[_ev(lo, env) if lo else None : _ev(hi, env) if hi else None]
        case ast.Subscript(value=value, slice=index):
            return _ev(value, env)[_ev(index, env)]
        case ast.Call(func=func, args=args, keywords=keywords):
            if isinstance(func, ast.Attribute) and not func.attr.startswith("_"):
                target = _ev(func.value, env)
                if not isinstance(target, str | dt.date):
                    raise ValueError(f"only str and date methods may be called: {ast.unparse(node)}")
                f = getattr(target, func.attr)
            else:  # a function of the formulas' namespace, or one drawn from a list of them
                f = _ev(func, env)
            return f(*(_ev(x, env) for x in args), **{k.arg: _ev(k.value, env) for k in keywords})
    raise ValueError(f"not allowed in a fixture formula: {ast.unparse(node)}")


def _comprehension(elt: ast.expr, generators: list[ast.comprehension], env: ChainMap[str, Any]) -> list[Any]:
    """[elt for a in xs if ... for b in ys ...], evaluated in Python's order: iterables, conditions, elements."""
    first, *rest = generators
    if not isinstance(first.target, ast.Name):
        raise ValueError(f"a comprehension variable must be a name: {ast.unparse(first.target)}")
    out = []
    for value in _ev(first.iter, env):
        inner = env.new_child({first.target.id: value})
        if all(_ev(test, inner) for test in first.ifs):
            out += _comprehension(elt, rest, inner) if rest else [_ev(elt, inner)]
    return out


def draw(rng: random.Random, spec: Mapping[str, Any], banks: Mapping[str, Any], **given: Any) -> dict[str, Any]:
    """The values of the entry `spec`'s `let` table, in order (`"a, b": ...` unpacks); `given` values come first.
    A formula's names are the values so far, the functions below, then banks of the entry itself, of `banks`
    and of the shared fixtures."""
    values = dict(given)
    funcs = {"randint": rng.randint, "uniform": rng.uniform, "random": rng.random, "sample": rng.sample}
    funcs |= {f.__name__: partial(f, rng) for f in _DRAWS} | {name: partial(_format, rng, f) for name, f in _FORMATS}
    env = ChainMap(values, funcs, _HELPERS, spec, banks, people.F, common.F)
    for names, formula in spec["let"].items():
        value = _ev(_parse(formula), env)
        targets = [n.strip() for n in names.split(",")]
        values.update(zip(targets, value, strict=True) if len(targets) > 1 else {names: value})
    return values


def _format(rng: random.Random, spec: Mapping[str, Any]) -> Any:
    """A value of one of the people fixture's formats: the last value of its `let` table."""
    return list(draw(rng, spec, people.F).values())[-1]


def render(rng: random.Random, spec: Mapping[str, Any], banks: Mapping[str, Any], **given: Any) -> str:
    """A text spec filled in with its drawn values: its `text` template, or its `text` parts joined by spaces
    (parts that come out empty are left out)."""
    v = draw(rng, spec, banks, **given)
    text = spec["text"]
    return text.format(**v) if isinstance(text, str) else " ".join(p for p in (t.format(**v) for t in text) if p)


# what formulas may call: draws, which are given the record's rng, and pure helpers
_DRAWS = (common.pick, common.some, common.fill, common.lognorm_int, common.shuffled, people.person, people.full_name)
_DRAWS += (people.email, people.card, people.iban, people.jwt, people.rsa_block, people.digits, people.alnum)
_DRAWS += (people.date_in,)
_FORMATS = list(people.F["formats"].items())
_HELPERS: dict[str, Callable[..., Any]] = {f.__name__: f for f in (common.num, common.money, common.cap, common.slug)}
_HELPERS |= {f.__name__: f for f in (common.with_article, common.mojibake, people.pretty_date, people.ascii_name)}
_HELPERS |= {f.__name__: f for f in (people.ascii_fold, round, abs, min, max, len, sum, str, int, sorted, format)}
_HELPERS |= {f.__name__: f for f in (range, repr, list)}
_HELPERS |= {"ceil": math.ceil, "datetime": dt.datetime, "timedelta": dt.timedelta}
