from ptdata.silver.dedup import dedup_key, exact_key
from ptdata.silver.pii import DEFAULT_ALLOWLIST, Allowlist
from ptdata.silver.pipeline import prepare_record


def test_prepare_normalizes_then_redacts_every_text_field():
    rec = {
        "prompt": [{"role": "user", "content": "Mail me at jane.doe@gmail.com\r\nabout the cafÃ©"}],
        "answer": "42",
        "verifier": "math",
        "verifier_args": '{"email": "keep@gmail.com"}',
    }
    out, counts = prepare_record("rlvr", rec, DEFAULT_ALLOWLIST)
    assert out["prompt"][0]["content"] == "Mail me at <EMAIL>\nabout the café"
    assert out["verifier_args"] == rec["verifier_args"]  # not text to train on: left as it was
    assert counts == {"EMAIL": 1} and rec["prompt"][0]["content"].startswith("Mail me at jane")


def test_source_allowlist_keeps_its_addresses():
    allow = Allowlist.from_config({"email_domains": ["corp.internal"]})
    out, counts = prepare_record("text", {"text": "write to ops@corp.internal"}, allow)
    assert out["text"] == "write to ops@corp.internal" and not counts


def test_exact_key_folds_case_spacing_and_punctuation_only():
    a = {"messages": [{"role": "user", "content": "Hello,  World!"}, {"role": "assistant", "content": "Hi."}]}
    b = {"messages": [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]}
    c = {"messages": [{"role": "assistant", "content": "hello world"}, {"role": "user", "content": "hi"}]}
    assert exact_key(dedup_key("sft", a)) == exact_key(dedup_key("sft", b))
    assert exact_key(dedup_key("sft", a)) != exact_key(dedup_key("sft", c))  # the same words in other roles
