"""Input shapes → canonical records (schema on read).

A shape maps one parsed input object to the columns of its regime (ARCHITECTURE.md, the lake):
sft → messages; preference → prompt, chosen, rejected; rlvr → prompt, answer, verifier, verifier_args;
text → text. Messages are lists of {"role", "content"} with roles system, user, assistant, tool.
Fields the shape does not use are returned as `meta`, so nothing in the input is lost.
A record that does not fit raises ShapeError with a reason code and a detail naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ptdata.core.regimes import regime as regime_spec
from ptdata.core.registry import Registry

Message = dict[str, str]

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
    "observation": "tool",
}
_PROMPT_KEYS = ("prompt", "query", "question")
_RESPONSE_KEYS = ("response", "completion", "answer", "output")
_RLVR_PROMPT_KEYS = ("prompt", "question", "problem")
_RLVR_ANSWER_KEYS = ("answer", "solution", "ground_truth", "reference")
_TEXT_KEYS = ("text", "content", "body")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


class ShapeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _need_str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ShapeError("wrong_type", f"{where}: expected a string, got {_type_name(v)}")
    return v


def _role(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ShapeError("wrong_type", f"{where}: expected a string, got {_type_name(v)}")
    role = ROLES.get(v.strip().lower())
    if role is None:
        raise ShapeError("unknown_role", f"{where}: {v[:40]!r} is not one of system, user, assistant, tool")
    return role


def _content(v: Any, where: str) -> str:
    """OpenAI content: a string, or a list of parts of which only text parts can be trained on."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        texts = []
        for j, part in enumerate(v):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _type_name(part)
                raise ShapeError("unsupported_content", f"{where}[{j}]: a {kind!r} part is not text")
        return "".join(texts)
    raise ShapeError("wrong_type", f"{where}: expected a string or a list of text parts, got {_type_name(v)}")


def _tool_calls_text(calls: Any, where: str) -> str:
    """Tool calls become assistant text in the Hermes/Qwen `<tool_call>` convention, so they can be trained."""
    if not isinstance(calls, list):
        raise ShapeError("wrong_type", f"{where}: expected a list, got {_type_name(calls)}")
    out = []
    for j, c in enumerate(calls):
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ShapeError("wrong_type", f"{where}[{j}]: a tool call needs function.name")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = orjson.loads(args)
            except orjson.JSONDecodeError:
                pass  # arguments that are not JSON are kept as the string the model produced
        call = orjson.dumps({"name": fn["name"], "arguments": args}, option=orjson.OPT_SORT_KEYS).decode()
        out.append(f"<tool_call>\n{call}\n</tool_call>")
    return "\n".join(out)


def _turns(v: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """A conversation's turns with their paths, once it is known to be a non-empty list of objects."""
    if not isinstance(v, list):
        raise ShapeError("wrong_type", f"{where}: expected a list of messages, got {_type_name(v)}")
    if not v:
        raise ShapeError("empty_messages", f"{where}: the message list is empty")
    for i, m in enumerate(v):
        if not isinstance(m, dict):
            raise ShapeError("wrong_type", f"{where}[{i}]: expected an object, got {_type_name(m)}")
    return [(f"{where}[{i}]", m) for i, m in enumerate(v)]


def _openai_message(at: str, m: dict[str, Any]) -> Message:
    role = _role(m.get("role"), f"{at}.role")
    content = m.get("content")
    calls = m.get("tool_calls") or m.get("function_call")
    if calls is not None and role == "assistant":
        calls = calls if isinstance(calls, list) else [calls]
        text = "" if content is None else _content(content, f"{at}.content")
        tool_text = _tool_calls_text(calls, f"{at}.tool_calls")
        return {"role": role, "content": f"{text}\n{tool_text}" if text else tool_text}
    if content is None and "content" not in m:
        raise ShapeError("missing_field", f"{at}.content")
    return {"role": role, "content": _content(content, f"{at}.content")}


def _sharegpt_message(at: str, m: dict[str, Any]) -> Message:
    if "from" not in m or "value" not in m:
        raise ShapeError("missing_field", f"{at}: a sharegpt turn needs 'from' and 'value'")
    return {"role": _role(m["from"], f"{at}.from"), "content": _need_str(m["value"], f"{at}.value")}


def _openai_messages(v: Any, where: str) -> list[Message]:
    return [_openai_message(at, m) for at, m in _turns(v, where)]


def _sharegpt_messages(v: Any, where: str) -> list[Message]:
    return [_sharegpt_message(at, m) for at, m in _turns(v, where)]


def _as_messages(v: Any, where: str, role: str) -> list[Message]:
    """A prompt or a reply given either as a string (one turn of `role`) or as a message list."""
    if isinstance(v, str):
        return [{"role": role, "content": v}]
    if isinstance(v, dict):
        return _openai_messages([v], where)
    return _openai_messages(v, where)


def _first_key(d: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in d), None)


def _messages(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    key = "messages" if "messages" in d else "conversation"
    return {"messages": _openai_messages(d.get(key), key)}, {key}


def _sharegpt(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    key = "conversations" if "conversations" in d else "conversation"
    return {"messages": _sharegpt_messages(d.get(key), key)}, {key}


def _with_system(d: dict[str, Any], msgs: list[Message], used: set[str]) -> tuple[dict[str, Any], set[str]]:
    """A single-turn pair with the record's `system` prompt, when it has one, as the first turn."""
    if d.get("system"):
        return {"messages": [{"role": "system", "content": _need_str(d["system"], "system")}, *msgs]}, used | {"system"}
    return {"messages": msgs}, used


def _alpaca(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    instruction = _need_str(d.get("instruction"), "instruction")
    extra = d.get("input") or ""
    user = f"{instruction}\n\n{_need_str(extra, 'input')}" if extra else instruction
    msgs = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": _need_str(d.get("output"), "output")},
    ]
    return _with_system(d, msgs, {"instruction", "input", "output"})


def _prompt_response(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    pk, rk = _first_key(d, _PROMPT_KEYS), _first_key(d, _RESPONSE_KEYS)
    if pk is None or rk is None:
        raise ShapeError("missing_field", f"prompt_response needs one of {_PROMPT_KEYS} and one of {_RESPONSE_KEYS}")
    return _with_system(d, _as_messages(d[pk], pk, "user") + _as_messages(d[rk], rk, "assistant"), {pk, rk})


def _hh_turns(s: Any, where: str) -> list[Message]:
    s = _need_str(s, where)
    parts = _HH_TURN.split("\n\n" + s.lstrip("\n") if not s.startswith("\n\n") else s)
    if parts[0].strip():
        raise ShapeError("hh_parse", f"{where}: text before the first 'Human:' turn")
    turns = [
        {"role": "user" if parts[i] == "Human" else "assistant", "content": parts[i + 1].strip()}
        for i in range(1, len(parts) - 1, 2)
    ]
    if not turns:
        raise ShapeError("hh_parse", f"{where}: no 'Human:'/'Assistant:' turns found")
    return turns


def _split_common_prefix(a: list[Message], b: list[Message]) -> tuple[list[Message], list[Message], list[Message]]:
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return a[:n], a[n:], b[n:]


def _pair_keys(d: dict[str, Any]) -> None:
    for k in ("chosen", "rejected"):
        if k not in d:
            raise ShapeError("missing_field", k)


def _hh(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    _pair_keys(d)
    prompt, chosen, rejected = _split_common_prefix(
        _hh_turns(d["chosen"], "chosen"), _hh_turns(d["rejected"], "rejected")
    )
    if not prompt:
        raise ShapeError("hh_parse", "chosen and rejected share no prompt turns")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, {"chosen", "rejected"}


def _preference(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    _pair_keys(d)
    chosen = _as_messages(d["chosen"], "chosen", "assistant")
    rejected = _as_messages(d["rejected"], "rejected", "assistant")
    pk = _first_key(d, _PROMPT_KEYS)
    if pk is None:
        # UltraFeedback-style pairs carry the prompt inside both conversations
        prompt, chosen, rejected = _split_common_prefix(chosen, rejected)
        if not prompt:
            raise ShapeError("missing_field", "prompt (and chosen/rejected share no prompt turns)")
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, {"chosen", "rejected"}
    prompt = _as_messages(d[pk], pk, "user")
    n = len(prompt)
    if chosen[:n] == prompt and rejected[:n] == prompt and len(chosen) > n and len(rejected) > n:
        chosen, rejected = chosen[n:], rejected[n:]
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, {pk, "chosen", "rejected"}


def _rlvr(d: dict[str, Any], default_verifier: str | None) -> tuple[dict[str, Any], set[str]]:
    pk, ak = _first_key(d, _RLVR_PROMPT_KEYS), _first_key(d, _RLVR_ANSWER_KEYS)
    if pk is None:
        raise ShapeError("missing_field", f"rlvr needs one of {_RLVR_PROMPT_KEYS}")
    if ak is None:
        raise ShapeError("missing_field", f"rlvr needs one of {_RLVR_ANSWER_KEYS}")
    answer = d[ak]
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = repr(answer) if isinstance(answer, float) else str(answer)
    verifier = d.get("verifier", default_verifier)
    if verifier is None:
        raise ShapeError("missing_field", "verifier (set it per record or as the source's `verifier`)")
    args = d.get("verifier_args", {})
    if isinstance(args, str):
        try:
            args = orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError:
            raise ShapeError("wrong_type", "verifier_args: a string that is not JSON") from None
    if not isinstance(args, dict):
        raise ShapeError("wrong_type", f"verifier_args: expected an object, got {_type_name(args)}")
    cols = {
        "prompt": _as_messages(d[pk], pk, "user"),
        "answer": _need_str(answer, ak),
        "verifier": _need_str(verifier, "verifier"),
        "verifier_args": orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode(),
    }
    return cols, {pk, ak, "verifier", "verifier_args"}


def _text(d: dict[str, Any], _: str | None) -> tuple[dict[str, Any], set[str]]:
    k = _first_key(d, _TEXT_KEYS)
    if k is None:
        raise ShapeError("missing_field", f"text needs one of {_TEXT_KEYS}")
    return {"text": _need_str(d[k], k)}, {k}


def _is_hh(d: dict[str, Any]) -> bool:
    c, r = d.get("chosen"), d.get("rejected")
    return (
        isinstance(c, str)
        and isinstance(r, str)
        and "\n\nHuman:" in "\n\n" + c.lstrip("\n")
        and "Assistant:" in c
        and _first_key(d, _PROMPT_KEYS) is None
    )


@dataclass(frozen=True)
class Shape:
    """An input layout: whether `shape: auto` takes a record for it, and its mapping to the regime's columns
    (the columns, and the input fields it used; the others go to `meta`)."""

    name: str
    detects: Callable[[dict[str, Any]], bool]
    to_columns: Callable[[dict[str, Any], str | None], tuple[dict[str, Any], set[str]]]


SHAPES: Registry[Shape] = Registry("shape")
register_shape = SHAPES.register


for _shape in (
    Shape(
        "messages",
        lambda d: "messages" in d or "conversation" in d and isinstance(d["conversation"], list) and _looks_openai(d),
        _messages,
    ),
    Shape("sharegpt", lambda d: "conversations" in d, _sharegpt),
    Shape("alpaca", lambda d: "instruction" in d and "output" in d, _alpaca),
    Shape(
        "prompt_response",
        lambda d: bool(_first_key(d, _PROMPT_KEYS) and _first_key(d, _RESPONSE_KEYS)),
        _prompt_response,
    ),
    Shape("hh", _is_hh, _hh),
    Shape("preference", lambda d: "chosen" in d and "rejected" in d, _preference),
    Shape("rlvr", lambda d: True, _rlvr),
    Shape("text", lambda d: True, _text),
):
    register_shape(_shape)


def detect_shape(d: dict[str, Any], regime: str) -> str:
    """The first of the regime's shapes (in its order) that takes the record."""
    names = regime_spec(regime).shapes
    for name in names:
        if SHAPES.get(name).detects(d):
            return name
    keys = ", ".join(sorted(d)[:12])
    raise ShapeError("unknown_shape", f"no {regime} shape ({', '.join(names)}) fits keys [{keys}]")


def _looks_openai(d: dict[str, Any]) -> bool:
    first = d["conversation"][0] if d["conversation"] else None
    return isinstance(first, dict) and "role" in first


def _get_path(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ShapeError("missing_field", f"{dotted} (from the source's shape field map)")
        cur = cur[part]
    return cur


def apply_field_map(d: dict[str, Any], field_map: dict[str, str]) -> dict[str, Any]:
    """An explicit shape: rename input fields (dotted paths allowed) to the canonical names the shapes read."""
    out = {k: v for k, v in d.items() if k not in {p.split(".")[0] for p in field_map.values()}}
    for canonical, dotted in field_map.items():
        out[canonical] = _get_path(d, dotted)
    return out


def to_canonical(
    payload: Any, regime: str, shape: str | dict[str, str] = "auto", default_verifier: str | None = None
) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Map one parsed input to (regime columns, source_key, meta). Raises ShapeError."""
    if not isinstance(payload, dict):
        raise ShapeError("not_an_object", f"a JSON {_type_name(payload)} is not a record")
    d = apply_field_map(payload, shape) if isinstance(shape, dict) else payload
    name = detect_shape(d, regime) if isinstance(shape, dict) or shape == "auto" else shape
    if name not in regime_spec(regime).shapes:
        raise ShapeError("unknown_shape", f"shape {name!r} does not fit regime {regime!r}")
    cols, used = SHAPES.get(name).to_columns(d, default_verifier)
    key = d.get("id")
    source_key = None if key is None else (key if isinstance(key, str) else orjson.dumps(key).decode())
    meta = {k: v for k, v in d.items() if k not in used and k != "id"}
    return cols, source_key, meta
