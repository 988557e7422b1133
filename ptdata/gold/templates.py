"""Chat templates as segments: what a conversation renders to, piece by piece, and which pieces are trained.

Trained (loss mask 1): an assistant message's content and the end-of-turn token right after it; everything
else (system, user and tool turns, role headers, the begin-of-text token) is not. `loss_on` picks every
assistant turn or only the last. Built in: `chatml` and `llama3`. `hf`: the model folder's own Jinja
`chat_template`, rendered in a sandboxed Jinja environment with a placeholder for each message's content; the
text between placeholders is scaffolding, and the special token that opens the scaffolding after an
assistant message is its end-of-turn token (a template without one is refused: nothing would teach the model
to stop).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ptdata.gold.tokenize import (
    LoadedTokenizer,
    RenderedBatch,
    Segment,
    encode_rendered,
    encode_segments,
    special_in_content,
    token_byte_lengths,
)

LossOn = Literal["all_assistant", "last_assistant"]
Message = dict[str, Any]


def _trained_turns(messages: Sequence[Message], loss_on: LossOn) -> set[int]:
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return set(assistant[-1:] if loss_on == "last_assistant" else assistant)


class ChatTemplate(ABC):
    """Renders messages to segments. Subclasses give the scaffolding."""

    name = "base"

    @abstractmethod
    def segments(
        self, messages: Sequence[Message], loss_on: LossOn = "all_assistant", generation_prompt: bool = False
    ) -> list[Segment]:
        """The conversation as scaffolding and content segments, each trained or not."""

    @abstractmethod
    def end_tokens(self, tok: LoadedTokenizer) -> tuple[str, ...]:
        """The tokens that may end a trained assistant turn."""

    def render(self, messages: Sequence[Message], generation_prompt: bool = False) -> str:
        return "".join(s.text for s in self.segments(messages, generation_prompt=generation_prompt))

    def render_batch(self, messages: pa.Array, loss_on: LossOn, specials: Sequence[str]) -> RenderedBatch | None:
        """A column of conversations rendered at once, where the template can (see _Scaffolded); else None."""
        return None


class _Scaffolded(ChatTemplate):
    """A template that is fixed text around each message: `prefix` once, then per message `head_open`, the role,
    `head_close`, the content, `end` (the end-of-turn token, trained with a trained turn's content) and `tail`.
    The one home of the built-in formats: `segments` and `render_batch` both read them."""

    prefix = ""
    head_open = head_close = end = tail = ""

    def end_tokens(self, tok: LoadedTokenizer) -> tuple[str, ...]:
        return (self.end,)

    def segments(
        self, messages: Sequence[Message], loss_on: LossOn = "all_assistant", generation_prompt: bool = False
    ) -> list[Segment]:
        trained = _trained_turns(messages, loss_on)
        out = [Segment(self.prefix, False)] if self.prefix else []
        for i, m in enumerate(messages):
            t = i in trained
            out += [
                Segment(f"{self.head_open}{m['role']}{self.head_close}", False),
                Segment(m["content"], t, True),
                Segment(self.end, t),
            ]
            if self.tail:
                out.append(Segment(self.tail, False))
        if generation_prompt:
            out.append(Segment(f"{self.head_open}assistant{self.head_close}", False))
        return out

    def render_batch(self, messages: pa.Array, loss_on: LossOn, specials: Sequence[str]) -> RenderedBatch | None:
        """What `segments` renders, for a column of conversations (list<struct<role, content>>) at once with
        Arrow's string kernels: each one's text, UTF-8 size and trained byte spans (a trained turn's content and
        end token are one span, as the mask reads them: a token is trained when it starts inside either), and
        whether any content holds a special token's text. None for a column with nulls (the caller renders
        those records one by one)."""
        if messages.null_count:
            return None
        flat = messages.flatten()
        role, content = flat.field("role"), flat.field("content")
        if role.null_count or content.null_count:
            return None
        offsets = messages.offsets.to_numpy().astype(np.int64)
        offsets -= offsets[0]
        head = pc.binary_join_element_wise(self.head_open, role, self.head_close, "")
        text = pc.binary_join_element_wise(head, content, self.end + self.tail, "")
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), text), "")
        if self.prefix:
            joined = pc.binary_join_element_wise(self.prefix, joined, "")
        head_bytes = pc.binary_length(head).to_numpy().astype(np.int64)
        content_bytes = pc.binary_length(content).to_numpy().astype(np.int64)
        end_bytes, prefix_bytes = len(self.end.encode()), len(self.prefix.encode())
        message_bytes = head_bytes + content_bytes + end_bytes + len(self.tail.encode())
        ends = np.r_[0, np.cumsum(message_bytes)]
        record_of = np.repeat(np.arange(len(messages)), np.diff(offsets))
        # each message's first byte in its record's text
        start = ends[:-1] - ends[offsets[:-1]][record_of] + prefix_bytes
        assistant = np.flatnonzero(pc.equal(role, "assistant").to_numpy(zero_copy_only=False))
        if loss_on == "last_assistant" and len(assistant):
            by_record = record_of[assistant]
            assistant = assistant[np.r_[by_record[1:] != by_record[:-1], True]]
        a = start[assistant] + head_bytes[assistant]
        spans = np.stack([record_of[assistant], a, a + content_bytes[assistant] + end_bytes], axis=1)
        special = np.zeros(len(content), dtype=bool)
        for token in specials:
            special |= pc.match_substring(content, token).to_numpy(zero_copy_only=False)
        return RenderedBatch(
            joined.to_pylist(),
            ends[offsets[1:]] - ends[offsets[:-1]] + prefix_bytes,
            spans.reshape(-1, 3),
            np.bincount(record_of[special], minlength=len(messages)) > 0,
        )


class ChatML(_Scaffolded):
    """<|im_start|>role\ncontent<|im_end|>\n per message."""

    name = "chatml"
    head_open, head_close, end, tail = "<|im_start|>", "\n", "<|im_end|>", "\n"


class Llama3(_Scaffolded):
    """<|begin_of_text|>, then <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> per message."""

    name = "llama3"
    prefix = "<|begin_of_text|>"
    head_open, head_close, end = "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>"


_PLACEHOLDER = "\x00ptdata-content-{}\x00"
_SPLIT = re.compile("\x00ptdata-content-(\\d+)\x00")


def _raise(message: str) -> None:
    raise TemplateError(message)


class HFTemplate(ChatTemplate):
    """A model's own Jinja chat template (see the module docstring)."""

    name = "hf"

    def __init__(self, source: str, tok: LoadedTokenizer) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        env.globals["raise_exception"] = _raise
        self.template = env.from_string(source)
        self.eos, self.bos = tok.eos, tok.bos or ""
        # longest first, so that a token that is a prefix of another does not win
        self.specials = sorted(tok.special_tokens, key=len, reverse=True)

    def end_tokens(self, tok: LoadedTokenizer) -> tuple[str, ...]:
        return tuple(self.specials)

    def segments(
        self, messages: Sequence[Message], loss_on: LossOn = "all_assistant", generation_prompt: bool = False
    ) -> list[Segment]:
        trained = _trained_turns(messages, loss_on)
        stand_ins = [{**m, "content": _PLACEHOLDER.format(i)} for i, m in enumerate(messages)]
        rendered = self.template.render(
            messages=stand_ins, add_generation_prompt=generation_prompt, eos_token=self.eos, bos_token=self.bos
        )
        parts = _SPLIT.split(rendered)  # scaffolding, index, scaffolding, index, ..., scaffolding
        out: list[Segment] = []
        previous: int | None = None
        for k, part in enumerate(parts):
            if k % 2:
                i = int(part)
                out.append(Segment(messages[i]["content"], i in trained, content=True))
                previous = i
                continue
            if previous is not None and messages[previous]["role"] == "assistant":
                end = next((s for s in self.specials if part.startswith(s)), None)
                if end is None:
                    raise ValueError(
                        f"the chat template puts no special token right after an assistant message (it continues "
                        f"{part[:30]!r}): there is no end-of-turn token to train"
                    )
                out.append(Segment(end, previous in trained))
                part = part[len(end) :]
            if part:
                out.append(Segment(part, False))
        return out


def plain_messages(value: Sequence[Message] | None) -> list[Message]:
    """A conversation as the templates take it: each message's role and content only."""
    return [{"role": m["role"], "content": m["content"]} for m in value or ()]


def encode_conversations(
    template: ChatTemplate, tok: LoadedTokenizer, column: pa.Array, loss_on: LossOn
) -> tuple[list[int], list[tuple[np.ndarray, np.ndarray]], dict[int, str]] | None:
    """A column of conversations rendered by `render_batch` and encoded at once (the byte-level path of
    `encode_segments`, with the same ids and masks): the records kept, their (ids, mask), and the records whose
    content holds a special token's text with the first such token (see special_in_content), which are not
    encoded. None when the template or the tokenizer has no such path."""
    if token_byte_lengths(tok.tokenizer) is None:
        return None
    rendered = template.render_batch(column, loss_on, tok.special_tokens)
    if rendered is None:
        return None

    def segments(i: int) -> list[Segment]:
        return template.segments(plain_messages(column[i].as_py()), loss_on)

    special: dict[int, str] = {}
    for i in np.flatnonzero(rendered.special).tolist():
        token = special_in_content(segments(i), tok.special_tokens)
        if token is None:  # the two are the same substring test: a record must not fall between them
            raise RuntimeError(f"render_batch found a special token in record {i} that special_in_content does not")
        special[i] = token
    kept = np.flatnonzero(~rendered.special)
    encoded = encode_rendered(
        tok.tokenizer,
        rendered.take(kept),
        lambda mismatched: encode_segments(tok.tokenizer, [segments(int(kept[i])) for i in mismatched]),
    )
    return kept.tolist(), encoded, special


def chat_template(name: str, tok: LoadedTokenizer) -> ChatTemplate:
    """The configured template: chatml, llama3, or hf (the tokenizer folder's own)."""
    if name == "chatml":
        template: ChatTemplate = ChatML()
    elif name == "llama3":
        template = Llama3()
    elif name == "hf":
        if not tok.chat_template:
            raise ValueError("tokenizer.chat_template is hf, but the tokenizer folder's tokenizer_config.json has none")
        template = HFTemplate(tok.chat_template, tok)
    else:
        raise ValueError(f"unknown chat template {name!r}; expected chatml, llama3 or hf")
    missing = [t for t in _NEEDED_TOKENS.get(name, ()) if tok.tokenizer.token_to_id(t) is None]
    if missing:
        raise ValueError(f"the {name} template needs special tokens the tokenizer lacks: {missing}")
    return template


_NEEDED_TOKENS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
}
