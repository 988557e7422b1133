"""The canonical form of a math reference answer: what the math verifier compares, and what silver's
unparseable_answer rule asks of an rlvr record."""

from __future__ import annotations

import re
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|\\left\b|\\right\b|\\displaystyle\b|~")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?|[-+]?\.\d+%?")
_LATEX_WORDS = {
    r"\pi": " pi ",
    r"\infty": " inf ",
    r"\cdot": "*",
    r"\times": "*",
    r"\div": "/",
    r"\sqrt": "sqrt",
    r"\ln": "ln",
    r"\log": "log",
    r"\sin": "sin",
    r"\cos": "cos",
    r"\tan": "tan",
    r"\exp": "exp",
}
_FUNCTIONS = frozenset({"sqrt", "ln", "log", "sin", "cos", "tan", "exp"})
_CONSTANTS = frozenset({"pi", "inf"})
_Node = tuple[str, Fraction | None]  # an expression's canonical text and, when it is rational, its value
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?|\.\d+)|([A-Za-z]+)|(\S))")


def _braced(s: str, open_at: int) -> tuple[str, int] | None:
    """The text inside the brace group that opens at s[open_at] == "{", and the index after it."""
    depth = 0
    for i in range(open_at, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[open_at + 1 : i], i + 1
    return None


def _latex_to_plain(s: str) -> str | None:
    """\\frac{a}{b} → ((a)/(b)), \\sqrt{x} → sqrt(x), ^{n} → ^(n), known macros → words; None on an
    unbalanced group or an unknown macro."""
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    for macro in (r"\dfrac", r"\tfrac", r"\frac"):
        while (i := s.find(macro)) >= 0:
            j = i + len(macro)
            num = _braced(s, j) if s[j : j + 1] == "{" else None
            den = _braced(s, num[1]) if num and s[num[1] : num[1] + 1] == "{" else None
            if num is None or den is None:
                return None
            s = f"{s[:i]}(({num[0]})/({den[0]})){s[den[1] :]}"
    for macro, plain in _LATEX_WORDS.items():
        s = s.replace(macro, plain)
    if "\\" in s:
        return None
    return s.replace("{", "(").replace("}", ")")


class _ExpressionParser:
    """A recursive-descent check that a string is a simple arithmetic expression: numbers, pi, inf,
    single-letter variables, + - * / ^, implicit products ("2x", "3sqrt(2)"), calls of a few functions,
    parentheses, and comma-separated tuples at the top ("(1, 2)", "[0, 1)").

    Each method returns (canonical text, exact value): the value is a Fraction while the expression is
    rational arithmetic, so "\\frac{6}{4}" and "1.5" come out the same, and None once a variable, a function
    or a constant is involved."""

    def __init__(self, s: str) -> None:
        # every non-space character is a token of some kind, so the matches cover the string
        self.tokens = [m.group(m.lastindex or 0) for m in _TOKEN.finditer(s)]
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> str | None:
        if not self.tokens:
            return None
        try:
            if self.tokens[0] in "([" and self.tokens[-1] in ")]" and "," in self.tokens:
                # a tuple or an interval: brackets kept, since "[0, 1)" and "(0, 1)" differ
                opening, closing = self.take(), self.tokens.pop()
                items = [_text(self.expr())]
                while self.peek() == ",":
                    self.take()
                    items.append(_text(self.expr()))
                out = opening + ",".join(items) + closing
            else:
                out = _text(self.expr())
        except (IndexError, ValueError, ZeroDivisionError, RecursionError):
            return None  # RecursionError: thousands of nested parentheses are not an answer
        return out if self.peek() is None else None

    def expr(self) -> _Node:
        text, value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rtext, rvalue = self.term()
            text += op + rtext
            if value is not None and rvalue is not None:
                value = value + rvalue if op == "+" else value - rvalue
            else:
                value = None
        return text, value

    def term(self) -> _Node:
        text, value = self.factor()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                op = self.take()
            elif tok is not None and (tok == "(" or tok[0].isalnum() or tok == "."):
                op = "*"  # implicit product: 2x, 2(3+1), 3sqrt(2)
            else:
                return text, value
            rtext, rvalue = self.factor()
            text += op + rtext
            if value is not None and rvalue is not None:
                value = value * rvalue if op == "*" else value / rvalue
            else:
                value = None

    def factor(self) -> _Node:
        if self.peek() in ("+", "-"):
            sign = self.take()
            text, value = self.factor()
            return sign + text, (-value if sign == "-" and value is not None else value)
        text, value = self.atom()
        if self.peek() != "^":
            return text, value
        self.take()
        etext, exponent = self.factor()
        # only integer powers with a result of at most ~4096 bits are evaluated: 10^100000 or ((10^64)^64)^64
        # would cost time and memory for nothing
        if value is not None and exponent is not None and exponent.denominator == 1:
            size = max(value.numerator.bit_length(), value.denominator.bit_length())
            if abs(exponent) * size <= 4096:
                return f"{text}^{etext}", value ** int(exponent)
        return f"{text}^{etext}", None

    def atom(self) -> _Node:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            value = Fraction(tok)
            return _canonical_rational(value), value
        if tok == "(":
            text, value = self.expr()
            if self.take() != ")":
                raise ValueError("unclosed parenthesis")
            return f"({text})", value
        if tok in _FUNCTIONS:
            if self.take() != "(":
                raise ValueError(f"{tok} needs an argument in parentheses")
            text, _ = self.expr()
            if self.take() != ")":
                raise ValueError("unclosed parenthesis")
            return f"{tok}({text})", None
        if tok in _CONSTANTS or (tok.isalpha() and len(tok) == 1):
            return tok, None
        raise ValueError(f"unexpected {tok!r}")


def _text(node: _Node) -> str:
    """A parsed expression's canonical text: its exact value when it has one, else its plain spelling."""
    return _canonical_rational(node[1]) if node[1] is not None else node[0]


def _canonical_rational(value: Fraction) -> str:
    """An exact number as text: "7" for 7, "3.5" for 7/2 (a terminating decimal), "1/3" otherwise."""
    if value.denominator == 1:
        return str(value.numerator)
    d, twos, fives = value.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    # exact decimal digits: the denominator divides 10^places, and a reduced fraction leaves no trailing zero
    places = max(twos, fives)
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    return f"{'-' if value < 0 else ''}{digits[:-places]}.{digits[-places:]}"


def parse_math_answer(s: str) -> str | None:
    """The canonical form of a math reference answer, or None when a math verifier could not use it.

    Accepted: numbers ("42", "-3.5", "1,234", "1e-3", "50%"), fractions ("1/2", "\\frac{1}{2}"), the content
    of the last \\boxed{...}, the part after a GSM8K "####", "$...$" and "x = ..." wrappers, and simple
    expressions of those with pi, sqrt and one-letter variables ("2\\sqrt{3}", "\\frac{\\pi}{4}", "(1, 2)").
    Rational values come out in one form whatever the spelling ("0.50", "1/2" and "\\frac{2}{4}" all give
    "0.5"; "\\frac{1}{3}" gives "1/3"); other expressions as plain text without spaces ("2*sqrt(3)").
    """
    s = s.strip()
    if "####" in s:
        s = s.rsplit("####", 1)[1].strip()
    boxes = list(_BOXED.finditer(s))
    if boxes:
        group = _braced(s, boxes[-1].end() - 1)
        if group is None:
            return None
        s = group[0].strip()
    for left, right in (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]")):
        if s.startswith(left) and s.endswith(right) and len(s) > len(left) + len(right):
            s = s[len(left) : -len(right)].strip()
            break
    s = _LATEX_SPACING.sub(" ", _LATEX_TEXT.sub(r" \1 ", s)).strip().rstrip(".").strip()
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s)  # "x = 5" answers the variable's value
    # an escaped percent sign, and a dollar sign, escaped or not, before an amount ("$5", "\\$5")
    s = re.sub(r"^\\?\$(?=\d)", "", s.replace("\\%", "%"))
    if _NUMBER.fullmatch(s):
        # thousands separators and percent signs are number syntax that the expression parser does not know
        percent = s.endswith("%")
        return _canonical_rational(Fraction(s.rstrip("%").replace(",", ""))) + ("%" if percent else "")
    plain = _latex_to_plain(s) if "\\" in s or "{" in s else s
    return _ExpressionParser(plain).parse() if plain is not None else None
