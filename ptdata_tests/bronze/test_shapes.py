import orjson
import pytest

from ptdata.bronze.shapes import ShapeError, detect_shape, to_canonical

U, A = "user", "assistant"


def m(role, content):
    return {"role": role, "content": content}


def test_openai_messages_with_parts_tool_calls_and_meta():
    rec = {
        "id": 7,
        "model": "gpt-x",
        "messages": [
            m("system", "be brief"),
            m("user", [{"type": "text", "text": "weather in "}, {"type": "text", "text": "Zürich?"}]),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "wx", "arguments": '{"city": "Zürich"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "3°C"},
            m("assistant", "It is 3°C."),
        ],
    }
    cols, key, meta = to_canonical(rec, "sft")
    msgs = cols["messages"]
    assert [x["role"] for x in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[1]["content"] == "weather in Zürich?"
    assert msgs[2]["content"] == '<tool_call>\n{"arguments":{"city":"Zürich"},"name":"wx"}\n</tool_call>'
    assert key == "7" and meta == {"model": "gpt-x"}


@pytest.mark.parametrize(
    "rec,shape",
    [
        ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}, "sharegpt"),
        ({"instruction": "Add", "input": "1+1", "output": "2"}, "alpaca"),
        ({"prompt": "hi", "response": "yo"}, "prompt_response"),
        ({"messages": [m("user", "hi"), m("assistant", "yo")]}, "messages"),
    ],
)
def test_sft_shapes_detected_and_mapped(rec, shape):
    assert detect_shape(rec, "sft") == shape
    cols, _, _ = to_canonical(rec, "sft")
    assert cols["messages"][-1]["role"] == A and cols["messages"][0]["role"] == U


def test_alpaca_joins_instruction_and_input():
    cols, _, _ = to_canonical({"instruction": "Sum", "input": "1 2", "output": "3", "system": "s"}, "sft")
    assert cols["messages"] == [m("system", "s"), m(U, "Sum\n\n1 2"), m(A, "3")]


def test_hh_transcripts_split_into_prompt_chosen_rejected():
    rec = {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 6.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: 7, I think.",
    }
    assert detect_shape(rec, "preference") == "hh"
    cols, _, _ = to_canonical(rec, "preference")
    assert cols["prompt"] == [m(U, "What is 2+2?"), m(A, "4."), m(U, "And 3+3?")]
    assert cols["chosen"] == [m(A, "6.")] and cols["rejected"] == [m(A, "7, I think.")]


def test_preference_strings_and_message_lists():
    cols, _, _ = to_canonical({"prompt": "q", "chosen": "good", "rejected": "bad"}, "preference")
    assert cols == {"prompt": [m(U, "q")], "chosen": [m(A, "good")], "rejected": [m(A, "bad")]}
    conv = {"chosen": [m(U, "q"), m(A, "good")], "rejected": [m(U, "q"), m(A, "bad")]}
    cols, _, _ = to_canonical(conv, "preference")
    assert cols == {"prompt": [m(U, "q")], "chosen": [m(A, "good")], "rejected": [m(A, "bad")]}


def test_rlvr_defaults_verifier_and_serializes_args():
    cols, _, meta = to_canonical({"question": "1+1?", "answer": 2, "level": 1}, "rlvr", default_verifier="math")
    assert cols["answer"] == "2" and cols["verifier"] == "math" and cols["verifier_args"] == "{}"
    assert meta == {"level": 1}
    rec = {
        "prompt": [m(U, "f?")],
        "solution": "def f(): pass",
        "verifier": "code_tests",
        "verifier_args": {"b": 1, "a": [2]},
    }
    cols, _, _ = to_canonical(rec, "rlvr")
    assert orjson.loads(cols["verifier_args"]) == {"a": [2], "b": 1}
    with pytest.raises(ShapeError, match="verifier"):
        to_canonical({"question": "x", "answer": "y"}, "rlvr")


def test_explicit_field_map_with_dotted_paths():
    rec = {"data": {"q": "hi", "a": "yo"}, "src": "x"}
    cols, _, meta = to_canonical(rec, "sft", {"prompt": "data.q", "response": "data.a"})
    assert cols["messages"] == [m(U, "hi"), m(A, "yo")] and meta == {"src": "x"}
    with pytest.raises(ShapeError, match="missing_field"):
        to_canonical({"x": 1}, "sft", {"prompt": "data.q", "response": "data.a"})


@pytest.mark.parametrize(
    "payload,reason",
    [
        ([1, 2], "not_an_object"),
        ("text", "not_an_object"),
        ({"messages": []}, "empty_messages"),
        ({"messages": "hello"}, "wrong_type"),
        ({"messages": [m("wizard", "x")]}, "unknown_role"),
        ({"messages": [m(U, 42)]}, "wrong_type"),
        ({"messages": [m(U, [{"type": "image_url", "image_url": {}}])]}, "unsupported_content"),
        ({"foo": 1}, "unknown_shape"),
    ],
)
def test_malformed_records_get_a_reason(payload, reason):
    with pytest.raises(ShapeError) as e:
        to_canonical(payload, "sft")
    assert e.value.reason == reason


def test_explicit_shape_that_does_not_fit():
    with pytest.raises(ShapeError, match="unknown_shape"):
        to_canonical({"text": "x"}, "sft", "text")
