"""Tokenizer training, chat templates as masked segments, and best-fit-decreasing packing."""

import json
import random

import numpy as np
import pyarrow as pa
import pytest
from tokenizers import Tokenizer, normalizers

from ptdata.core.regimes import MESSAGES
from ptdata.gold.pack import pack_best_fit, pack_first_fit, position_ids, truncate_sequence
from ptdata.gold.templates import chat_template, encode_conversations
from ptdata.gold.tokenize import (
    EOS,
    LoadedTokenizer,
    Segment,
    _encode_with_offsets,
    _render,
    encode_segments,
    load_tokenizer,
    special_in_content,
    token_byte_lengths,
    train_bpe,
)

CONVERSATIONS = [
    [
        {"role": "system", "content": "You are a careful assistant. Réponds en français si on te parle français."},
        {"role": "user", "content": "Quelle est la capitale du Japon ? 東京ですか？"},
        {"role": "assistant", "content": "Oui : Tokyo (東京) est la capitale du Japon. 🚀"},
        {"role": "user", "content": "And the weather there tomorrow?\n\nPlease check."},
        {
            "role": "assistant",
            "content": '<tool_call>{"name": "weather", "arguments": {"city": "Tokyo", "day": "tomorrow"}}</tool_call>',
        },
        {"role": "tool", "content": '{"forecast": "rain", "high_c": 14}'},
        {"role": "assistant", "content": "Tomorrow: rain, with a high of 14 °C.\n```python\nprint('☔')\n```"},
    ],
    [
        {"role": "user", "content": "  leading spaces and trailing newline\n"},
        {"role": "assistant", "content": "Zürich — naïve café, déjà vu.\n\n    indented code"},
    ],
]

# a ChatML template in Jinja, as HF model folders ship it
HF_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# a Llama-3-style template in Jinja, with bos_token
HF_LLAMA = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tok() -> LoadedTokenizer:
    texts = [m["content"] for c in CONVERSATIONS for m in c] * 20 + ["the quick brown fox jumps over the lazy dog"] * 50
    return LoadedTokenizer(train_bpe(texts, 600), EOS, None, None)


def _hf(tok: LoadedTokenizer, source: str, bos: str | None = None) -> LoadedTokenizer:
    return LoadedTokenizer(tok.tokenizer, tok.eos, bos, source)


def test_training_is_deterministic():
    texts = ["alpha beta gamma delta"] * 30 + ["Zürich 東京 🚀"] * 10
    assert train_bpe(texts, 300).to_str() == train_bpe(list(texts), 300).to_str()


@pytest.mark.parametrize("name", ["chatml", "llama3", "hf-chatml", "hf-llama"])
def test_segments_tokenize_like_the_rendered_string(tok, name):
    loaded = {"hf-chatml": _hf(tok, HF_CHATML), "hf-llama": _hf(tok, HF_LLAMA, "<|begin_of_text|>")}.get(name, tok)
    template = chat_template("hf" if name.startswith("hf") else name, loaded)
    for conv in CONVERSATIONS:
        for generation_prompt in (False, True):
            segments = template.segments(conv, generation_prompt=generation_prompt)
            rendered = "".join(s.text for s in segments)
            ids, mask = encode_segments(tok.tokenizer, [segments])[0]
            assert ids.tolist() == tok.tokenizer.encode(rendered, add_special_tokens=False).ids
            assert tok.tokenizer.decode(ids.tolist(), skip_special_tokens=False) == rendered
            trained = tok.tokenizer.decode(ids[mask == 1].tolist(), skip_special_tokens=False)
            end = (
                template.end_tokens(loaded)[0]
                if not name.startswith("hf")
                else "<|im_end|>"
                if "chatml" in name
                else "<|eot_id|>"
            )
            assert trained == "".join(m["content"] + end for m in conv if m["role"] == "assistant")


def test_builtin_and_hf_templates_render_alike(tok):
    for conv in CONVERSATIONS:
        assert chat_template("hf", _hf(tok, HF_CHATML)).render(conv) == chat_template("chatml", tok).render(conv)
        llama = chat_template("hf", _hf(tok, HF_LLAMA, "<|begin_of_text|>"))
        assert llama.render(conv, True) == chat_template("llama3", tok).render(conv, True)


def test_loss_on_last_assistant_turn_only(tok):
    template = chat_template("chatml", tok)
    conv = CONVERSATIONS[0]
    ids, mask = encode_segments(tok.tokenizer, [template.segments(conv, "last_assistant")])[0]
    assert (
        tok.tokenizer.decode(ids[mask == 1].tolist(), skip_special_tokens=False) == conv[-1]["content"] + "<|im_end|>"
    )


def test_special_token_text_in_a_content_is_found(tok):
    conv = [{"role": "user", "content": "hi<|im_end|>"}, {"role": "assistant", "content": "ok"}]
    segments = chat_template("chatml", tok).segments(conv)
    assert special_in_content(segments, tok.special_tokens) == "<|im_end|>"
    assert special_in_content(chat_template("chatml", tok).segments(CONVERSATIONS[0]), tok.special_tokens) is None


def test_hf_template_without_an_end_token_is_refused(tok):
    bare = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ValueError, match="no special token right after an assistant message"):
        chat_template("hf", _hf(tok, bare)).segments(CONVERSATIONS[1])
    with pytest.raises(ValueError, match="has none"):
        chat_template("hf", tok)


def test_load_an_hf_model_folder(tmp_path, tok):
    tok.tokenizer.save(str(tmp_path / "tokenizer.json"))
    config = {"eos_token": {"content": "<|im_end|>"}, "bos_token": None, "chat_template": HF_CHATML}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(tmp_path)
    assert loaded.eos == "<|im_end|>" and loaded.chat_template == HF_CHATML
    assert load_tokenizer(tmp_path / "tokenizer.json").eos == EOS
    with pytest.raises(ValueError, match="no tokenizer.json"):
        load_tokenizer(tmp_path / "missing")


def test_encode_segments_masks_by_segment(tok):
    segs = [Segment("hello ", False), Segment("world", True, content=True), Segment("<|im_end|>", True)]
    ids, mask = encode_segments(tok.tokenizer, [segs, segs[:1]])[0]
    assert mask.dtype == np.int8 and len(ids) == len(mask) and mask[-1] == 1 and mask[0] == 0


def _random_segments(rng: random.Random) -> list[Segment]:
    """Segments of mixed scripts, emoji and spaces, trained or not, often ending inside a multi-byte run."""
    pieces = ["hello", " world", "東京", "🚀", "🥐", "😊!", " naïve", "\n\n", "Zürich", " — ", "<|im_end|>", "x"]
    return [
        Segment("".join(rng.choices(pieces, k=rng.randint(1, 4))), rng.random() < 0.5, content=True)
        for _ in range(rng.randint(1, 6))
    ]


def test_the_fast_path_masks_as_the_offsets_do(tok):
    rng = random.Random(7)
    records = [_random_segments(rng) for _ in range(400)]
    assert token_byte_lengths(tok.tokenizer) is not None  # ptdata's own tokenizer takes the fast path
    fast = encode_segments(tok.tokenizer, records)
    offsets = _encode_with_offsets(tok.tokenizer, [_render(r) for r in records])
    for (ids, mask), (ids2, mask2) in zip(fast, offsets, strict=True):
        assert ids.tolist() == ids2.tolist() and mask.tolist() == mask2.tolist()
        assert len(ids) == len(mask) and mask.dtype == np.int8
    # the rng makes segments end inside emoji and CJK runs: both paths train a split character's every token
    assert sum(int(m.sum()) for _, m in fast) > 0


def test_a_record_whose_tokens_miss_its_bytes_takes_the_offsets_path_alone(tok, monkeypatch):
    rng = random.Random(8)
    records = [_random_segments(rng) for _ in range(200)]
    offsets = _encode_with_offsets(tok.tokenizer, [_render(r) for r in records])
    # one token made a byte too wide: the records holding it no longer add up and must take the offsets path,
    # and the records after them in the batch must be masked as before
    wide = int(offsets[0][0][0])
    lengths = token_byte_lengths(tok.tokenizer).copy()
    lengths[wide] += 1
    monkeypatch.setattr("ptdata.gold.tokenize.token_byte_lengths", lambda _: lengths)
    holding = [wide in ids for ids, _ in offsets]
    assert 0 < sum(holding) < len(records)
    fast = encode_segments(tok.tokenizer, records)
    for (ids, mask), (ids2, mask2) in zip(fast, offsets, strict=True):
        assert ids.tolist() == ids2.tolist() and mask.tolist() == mask2.tolist()
    assert encode_segments(tok.tokenizer, []) == []


def test_a_tokenizer_with_a_normalizer_takes_the_offsets_path(tok):
    norm = Tokenizer.from_str(tok.tokenizer.to_str())
    norm.normalizer = normalizers.NFC()
    assert token_byte_lengths(norm) is None
    segs = [Segment("user: hi ", False), Segment("Zürich 🚀", True), Segment("<|im_end|>", True)]
    ids, mask = encode_segments(norm, [segs])[0]
    assert norm.decode(ids[mask == 1].tolist(), skip_special_tokens=False) == "Zürich 🚀<|im_end|>"


def test_an_emoji_that_ends_a_trained_segment_is_trained_whole(tok):
    segs = [Segment("<|im_start|>assistant\n", False), Segment("Bon appétit ! 🥐", True), Segment("\nnext", False)]
    for ids, mask in (
        encode_segments(tok.tokenizer, [segs])[0],
        _encode_with_offsets(tok.tokenizer, [_render(segs)])[0],
    ):
        assert tok.tokenizer.decode(ids[mask == 1].tolist(), skip_special_tokens=False) == "Bon appétit ! 🥐"


# ------------------------------------------------------------------------------------------------ packing


def _fill(rows, lengths):
    return [sum(lengths[i] for i in r) for r in rows]


def test_best_fit_decreasing_packs_every_sequence_once_within_capacity():
    rng = np.random.default_rng(3)
    lengths = np.clip(rng.lognormal(5.5, 1.0, 5000).astype(int), 1, 2048)
    keys = [f"r{i:05d}" for i in range(len(lengths))]
    rows = pack_best_fit(lengths, keys, 2048)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    fill = _fill(rows, lengths)
    assert max(fill) <= 2048
    assert sum(fill) / (len(rows) * 2048) >= 0.99
    # never worse than first fit in arrival order
    assert len(rows) <= len(pack_first_fit(lengths, 2048))
    # a function of the set of sequences: shuffled input, same rows (by key)
    perm = list(range(len(lengths)))
    random.Random(1).shuffle(perm)
    again = pack_best_fit(lengths[perm], [keys[i] for i in perm], 2048)
    assert [[keys[perm[i]] for i in r] for r in again] == [[keys[i] for i in r] for r in rows]


def test_best_fit_picks_the_tightest_row():
    # 5 opens a row (room 1), 4 opens one (room 2), 3 one (room 3); the 2 goes where it leaves least room: 4's
    rows = pack_best_fit([5, 4, 3, 2], ["a", "b", "c", "d"], 6)
    assert rows == [[0], [1, 3], [2]]
    with pytest.raises(ValueError, match="lengths must be"):
        pack_best_fit([7], ["a"], 6)


def test_position_ids_restart_per_sequence():
    assert position_ids([3, 1, 2]).tolist() == [0, 1, 2, 0, 0, 1]


def test_truncate_keeps_what_a_sequence_trains():
    ids, mask = np.arange(10, dtype=np.int32), np.array([0, 0, 1, 1, 0, 0, 1, 1, 1, 1], dtype=np.int8)
    last = truncate_sequence(ids, mask, 4, "last", 99)
    assert last[0].tolist() == [6, 7, 8, 9] and last[1].tolist() == [1, 1, 1, 1]
    first = truncate_sequence(ids, np.ones(10, dtype=np.int8), 4, "first", 99)
    assert first[0].tolist() == [0, 1, 2, 99] and first[1].all()
    assert truncate_sequence(ids, np.array([1] + [0] * 9, dtype=np.int8), 4, "last", 99) is None


def _random_conversations(rng: random.Random, n: int) -> list[list[dict]]:
    """Conversations of every role, empty and multi-byte contents, some holding a special token's text, some
    with no assistant turn, and a few with no message at all."""
    pieces = ["", "hello", " world", "東京", "🚀", " naïve", "\n\n", "Zürich", " — ", "x", "<|im_end|>", "<|eot_id|>"]
    roles = ["system", "user", "assistant", "tool"]
    return CONVERSATIONS + [
        [
            {"role": rng.choice(roles), "content": "".join(rng.choices(pieces, weights=[8] + [4] * 9 + [1, 1], k=3))}
            for _ in range(rng.randint(0, 6))
        ]
        for _ in range(n)
    ]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@pytest.mark.parametrize("name", ["chatml", "llama3"])
@pytest.mark.parametrize("loss_on", ["all_assistant", "last_assistant"])
def test_render_batch_renders_what_segments_render(tok, name, loss_on):
    rng = random.Random(11)
    conversations = _random_conversations(rng, 300)
    template = chat_template(name, _hf(tok, ""))
    nulls = pa.array([*conversations[:3], None], MESSAGES)
    assert template.render_batch(nulls, loss_on, tok.special_tokens) is None  # a null: record by record
    # a slice, as a row group's batches are: its offsets do not start at 0
    column = pa.array([CONVERSATIONS[0], *conversations], MESSAGES).slice(1)
    batch = template.render_batch(column, loss_on, tok.special_tokens)
    for k, conversation in enumerate(conversations):
        segments = template.segments(conversation, loss_on)
        rendered = _render(segments)
        assert batch.texts[k] == rendered.text and batch.sizes[k] == rendered.size
        spans = [(int(a), int(b)) for r, a, b in batch.spans.tolist() if r == k]
        assert spans == _merged(rendered.bytes)
        assert bool(batch.special[k]) == (special_in_content(segments, tok.special_tokens) is not None)
    assert batch.special.any() and not batch.special.all() and len(batch.spans)


@pytest.mark.parametrize("name", ["chatml", "llama3"])
def test_encode_conversations_gives_the_ids_masks_and_rejections_of_encode_segments(tok, name):
    rng = random.Random(12)
    conversations = _random_conversations(rng, 300)
    template = chat_template(name, _hf(tok, ""))
    kept, encoded, special = encode_conversations(template, tok, pa.array(conversations, MESSAGES), "all_assistant")
    segments = [template.segments(c) for c in conversations]
    assert special == {
        i: t for i, s in enumerate(segments) if (t := special_in_content(s, tok.special_tokens)) is not None
    }
    assert sorted([*kept, *special]) == list(range(len(conversations)))  # every record kept or rejected
    for i, (ids, mask) in zip(kept, encoded, strict=True):
        [(ids2, mask2)] = encode_segments(tok.tokenizer, [segments[i]])
        assert ids.tolist() == ids2.tolist() and mask.tolist() == mask2.tolist()
