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

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ptdata.gold.tokenize import LoadedTokenizer, Segment

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


class ChatML(ChatTemplate):
    """<|im_start|>role\\ncontent<|im_end|>\\n per message."""

    name = "chatml"

    def end_tokens(self, tok: LoadedTokenizer) -> tuple[str, ...]:
        return ("<|im_end|>",)

    def segments(
        self, messages: Sequence[Message], loss_on: LossOn = "all_assistant", generation_prompt: bool = False
    ) -> list[Segment]:
        trained = _trained_turns(messages, loss_on)
        out = []
        for i, m in enumerate(messages):
            t = i in trained
            out += [
                Segment(f"<|im_start|>{m['role']}\n", False),
                Segment(m["content"], t, content=True),
                Segment("<|im_end|>", t),
                Segment("\n", False),
            ]
        if generation_prompt:
            out.append(Segment("<|im_start|>assistant\n", False))
        return out


class Llama3(ChatTemplate):
    """<|begin_of_text|>, then <|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|> per message."""

    name = "llama3"

    def end_tokens(self, tok: LoadedTokenizer) -> tuple[str, ...]:
        return ("<|eot_id|>",)

    def segments(
        self, messages: Sequence[Message], loss_on: LossOn = "all_assistant", generation_prompt: bool = False
    ) -> list[Segment]:
        trained = _trained_turns(messages, loss_on)
        out = [Segment("<|begin_of_text|>", False)]
        for i, m in enumerate(messages):
            t = i in trained
            out += [
                Segment(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n", False),
                Segment(m["content"], t, content=True),
                Segment("<|eot_id|>", t),
            ]
        if generation_prompt:
            out.append(Segment("<|start_header_id|>assistant<|end_header_id|>\n\n", False))
        return out


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
