"""Quality rules: each one with a record it must reject and a look-alike it must keep."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ptdata.rl.verifiers.math_answer import parse_math_answer
from ptdata.silver.quality import (
    RULES,
    QualityRules,
    RepetitionRule,
    ending,
    evaluate,
    is_refusal,
    repetition_stats,
)

SFT = QualityRules.for_regime("sft")
PREF = QualityRules.for_regime("preference")
RLVR = QualityRules.for_regime("rlvr")
TEXT = QualityRules.for_regime("text")

GOOD_REPLY = "Restart the service with `systemctl restart app`, then check the logs again."
ESSAY = (
    "Sourdough starts with a culture of wild yeast and lactic acid bacteria that the baker keeps alive by feeding "
    "it flour and water. The bacteria produce acids that give the bread its tang, while the yeast produces the gas "
    "that makes the dough rise. A young starter is weak, so most recipes ask for a week of daily feedings before "
    "the first loaf. Temperature matters a great deal: a warm kitchen speeds fermentation and a cold one slows "
    "it, which is why bakers talk about the schedule in terms of how the dough looks rather than the clock. "
    "Hydration changes the crumb as well; wetter doughs give bigger, irregular holes but are harder to shape. "
    "Finally, a hot oven and some steam in the first minutes let the loaf expand before the crust sets."
)


def chat(reply: str, user: str = "How do I fix this?") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}


def pair(chosen: str, rejected: str) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": "Which is better?"}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def rlvr(answer: str, verifier: str = "math", args: str = "{}") -> dict[str, Any]:
    prompt = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]
    return {"prompt": prompt, "answer": answer, "verifier": verifier, "verifier_args": args}


def failed(regime: str, record: dict[str, Any], rules: QualityRules | None = None) -> list[str]:
    return evaluate(regime, record, rules or QualityRules.for_regime(regime)).failed_rules


# ---------------------------------------------------------------------------------------------- rules


def test_a_good_record_of_each_regime_passes() -> None:
    assert failed("sft", chat(GOOD_REPLY)) == []
    assert failed("preference", pair(GOOD_REPLY, "Just reinstall everything.")) == []
    assert failed("rlvr", rlvr("7")) == []
    assert failed("text", {"text": ESSAY}) == []


def test_empty_turn() -> None:
    assert failed("sft", chat("")) == ["empty_turn", "length"]
    assert "empty_turn" in failed("sft", chat(GOOD_REPLY, user="  \n "))
    assert "empty_turn" in failed("sft", {"messages": []})
    assert "empty_turn" in failed("preference", pair(GOOD_REPLY, " "))
    assert "empty_turn" in failed("rlvr", rlvr(""))
    assert "empty_turn" in failed("text", {"text": None})
    # hard negative: a tool that printed nothing is a real turn
    with_tool = chat(GOOD_REPLY)
    with_tool["messages"][1:1] = [
        {"role": "assistant", "content": '<tool_call>\n{"name": "run"}\n</tool_call>'},
        {"role": "tool", "content": ""},
    ]
    assert failed("sft", with_tool) == []


def test_no_assistant_turn() -> None:
    assert failed("sft", {"messages": [{"role": "user", "content": "Hello?"}]}) == ["no_assistant_turn"]
    record = pair(GOOD_REPLY, "Nope.")
    record["rejected"] = [{"role": "user", "content": "Nope."}]
    assert "no_assistant_turn" in failed("preference", record)
    # hard negative: a conversation may end on a user turn after an assistant turn
    record = chat(GOOD_REPLY)
    record["messages"].append({"role": "user", "content": "Thanks!"})
    assert failed("sft", record) == []


def test_length_bounds_per_regime() -> None:
    rules = QualityRules.for_regime("sft", {"length": {"min_chars": 5, "max_chars": 100}})
    assert failed("sft", chat("Yes."), rules) == ["length"]
    assert failed("sft", chat(GOOD_REPLY * 2), rules) == ["length"]
    assert failed("sft", chat(GOOD_REPLY), rules) == []
    assert failed("sft", chat("4")) == []  # by default a one-character answer is a fine answer
    assert failed("text", {"text": "Too short."}) == ["length"]
    assert "length" in failed("text", {"text": "x. " * 300_000})
    assert failed("rlvr", {**rlvr("7"), "prompt": [{"role": "user", "content": "2+2?"}]}) == ["length"]
    # preference bounds apply to both replies: a 50k-character rejected reply cannot be trained on either
    assert failed("preference", pair(GOOD_REPLY, "a. " * 20_000)) == ["length"]


def test_repetition_rejects_a_looping_reply() -> None:
    loop = "I will check the logs and restart the service. " * 40
    assert "repetition" in failed("sft", chat(loop))
    paragraphs = "\n\n".join([ESSAY.split(". ")[0] + "."] * 8 + [ESSAY])
    assert "repetition" in failed("text", {"text": paragraphs})


def test_repetition_spares_prose_tables_code_and_short_replies() -> None:
    # the table and the code block below fail Gopher's n-gram limits when counted: they are left out
    assert failed("text", {"text": ESSAY}) == []
    table = "| Feature | Free | Pro |\n|---|---|---|\n" + "".join(f"| Feature {i} | Yes | Yes |\n" for i in range(60))
    assert failed("sft", chat("Here is the comparison:\n\n" + table + "\n" + ESSAY)) == []
    code = "```python\n" + "".join(f"    assert parse_record(records[{i}]) is not None\n" for i in range(60)) + "```"
    assert failed("sft", chat("The tests, one per record:\n" + code + "\n" + ESSAY)) == []
    # a short reply that repeats a phrase is below min_words and not judged
    assert failed("sft", chat("Yes, yes, yes. I agree, I agree, I agree.")) == []


def test_gopher_statistics() -> None:
    rule = RepetitionRule(min_words=1)
    stats = repetition_stats("a b c\na b c\nd e f\n\ng h", rule)
    assert stats is not None
    assert stats["dup_line_frac"] == pytest.approx(1 / 4)
    assert stats["top_2gram_char_frac"] == pytest.approx(2 * 2 / 11)  # "a b" twice, of 11 word characters
    assert repetition_stats("short text", RepetitionRule()) is None


def test_truncated() -> None:
    assert failed("sft", chat("Restart the service, then check the logs and")) == ["truncated"]
    assert failed("sft", chat("Here is the fix:\n```python\ndef f(x):\n    return x * 2")) == ["truncated"]
    assert failed("sft", chat("It has three steps. First you need to open the settings of your")) == ["truncated"]
    assert failed("sft", chat("You will need the following items:")) == ["truncated"]


@pytest.mark.parametrize(
    "reply",
    [
        "Here is the fix:\n```python\ndef f(x):\n    return x * 2\n```",
        "Steps:\n1. Open the app\n2. Go to Settings\n3. Tap Reset password",
        "- flour\n- water\n- salt",
        "The docs are at https://docs.python.org/3/library/re.html",
        "def f(x):\n    return x * 2",
        "Paris",
        "The answer is 42",
        "Have a great trip 🎉",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "Best regards,\nMaya",
        "He said “no.”",
        "これで完了です。",
    ],
)
def test_not_truncated(reply: str) -> None:
    assert "truncated" not in failed("sft", chat(reply))


def test_ending_kinds() -> None:
    assert ending("All done.") == "ok"
    assert ending("Hope this helps") == "unfinished"
    assert ending("Mix the flour with the") == "cut"
    assert ending("- Buy milk.\n- Then go to the store for fresh bread") == "cut"  # punctuated list, last cut


def test_refusal() -> None:
    for reply in (
        "As an AI language model, I cannot browse the internet.",
        "I'm sorry, but I cannot help with that.",
        "I’m sorry, but as an AI language model I cannot help with that request.",
        "I can't assist with that.",
        "As an AI developed to be helpful and harmless, I'm unable to fulfil this request.",
        "Unfortunately, I cannot provide that information.",
    ):
        assert failed("sft", chat(reply)) == ["refusal"], reply


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry to hear that, here is how to fix it: restart the router and wait a minute.",
        "I can't help but notice the typo in line 3; fix it and the test passes.",
        "As an AI researcher, you might enjoy the attention paper.",
        "I cannot stress this enough: keep a backup.",
        "Here is the recipe. As an AI language model I cannot taste it, but readers love it.",
    ],
)
def test_not_refusal(reply: str) -> None:
    assert not is_refusal(reply)
    assert "refusal" not in failed("sft", chat(reply))


def test_refusal_is_off_for_preference_and_judges_only_the_chosen_reply() -> None:
    refusal = "I'm sorry, but I cannot help with that."
    assert failed("preference", pair(refusal, "Sure, here is how to pick a lock.")) == []
    assert failed("preference", pair(GOOD_REPLY, refusal)) == []
    rules = QualityRules.for_regime("preference", {"refusal": {"enabled": True}})
    assert failed("preference", pair(refusal, GOOD_REPLY), rules) == ["refusal"]
    # a cut-off rejected reply is a fine negative example
    assert failed("preference", pair(GOOD_REPLY, "Well, you could try the")) == []


def test_identical_pair() -> None:
    assert failed("preference", pair(GOOD_REPLY, GOOD_REPLY)) == ["identical_pair"]
    assert failed("preference", pair(GOOD_REPLY, GOOD_REPLY.replace(" ", "  ") + "\r\n")) == ["identical_pair"]
    # hard negative: case and punctuation are content, so this pair does express a preference
    assert failed("preference", pair(GOOD_REPLY, GOOD_REPLY.upper())) == []


@pytest.mark.parametrize(
    ("answer", "canonical"),
    [
        ("42", "42"),
        ("-3.5", "-3.5"),
        ("\\boxed{7}", "7"),
        ("\\frac{1}{2}", "0.5"),
        ("1/2", "0.5"),
        ("#### 42", "42"),
        ("Natalia sold 48 clips in April and 24 in May.\n#### 72", "72"),
        ("3.50", "3.5"),
        ("1,234", "1234"),
        ("50%", "50%"),
        ("\\boxed{\\dfrac{2}{6}}", "1/3"),
        ("$\\frac12$", "0.5"),
        ("x = 5", "5"),
        ("2\\sqrt{3}", "2*sqrt(3)"),
        ("\\frac{\\pi}{4}", "((pi)/(4))"),
        ("(1, 2)", "(1,2)"),
        ("[0, 1)", "[0,1)"),
        ("2^{10}", "1024"),
        ("3x + 1", "3*x+1"),
    ],
)
def test_math_answers_parse(answer: str, canonical: str) -> None:
    assert parse_math_answer(answer) == canonical
    assert failed("rlvr", rlvr(answer)) == []


@pytest.mark.parametrize(
    "answer", ["see above", "The answer is 42", "", "\\boxed{}", "\\boxed{7", "1/0", "yes", "(1+2"]
)
def test_math_answers_that_do_not_parse(answer: str) -> None:
    assert parse_math_answer(answer) is None
    assert "unparseable_answer" in failed("rlvr", rlvr(answer))


def test_unparseable_answer_for_other_verifiers() -> None:
    assert failed("rlvr", rlvr("Paris", "exact")) == []
    assert failed("rlvr", rlvr("def f(): pass", "code_tests", '{"tests": ["assert f() is None"]}')) == []
    assert failed("rlvr", rlvr("def f(): pass", "code_tests", '{"tests": []}')) == ["unparseable_answer"]
    assert failed("rlvr", rlvr("def f(): pass", "code_tests", "{}")) == ["unparseable_answer"]
    assert failed("rlvr", rlvr("def f(): pass", "code_tests", "not json")) == ["unparseable_answer"]
    assert failed("rlvr", rlvr("7", "llm_judge")) == ["unparseable_answer"]


def test_language_rule() -> None:
    german = chat("Starte den Dienst neu und prüfe danach die Protokolle.", user="Wie behebe ich das?")
    only_en = QualityRules.for_regime("sft", allowed_languages=["en"])
    assert failed("sft", german, only_en) == ["language"]
    assert failed("sft", german, QualityRules.for_regime("sft", allowed_languages=["en", "de"])) == []
    assert failed("sft", german) == []  # no allowed list: every language passes
    # undetermined text (code, a word) passes unless configured otherwise
    code = chat("```python\nprint(1)\n```", user="```python\nprint(0)\n```")
    assert failed("sft", code, only_en) == []
    strict = QualityRules.for_regime("sft", {"language": {"allow_und": False}}, allowed_languages=["en"])
    assert failed("sft", code, strict) == ["language"]
    # a language the caller detected already is used as is
    assert evaluate("sft", chat(GOOD_REPLY), only_en, lang=("fr", 0.9)).failed_rules == ["language"]


# --------------------------------------------------------------------------------------- result and config


def test_result_reason_and_rule_order() -> None:
    result = evaluate("sft", chat(""), SFT)
    assert not result.passed and result.score == 0.0
    assert result.failed_rules == ["empty_turn", "length"]
    assert result.reason == "quality:empty_turn"
    ok = evaluate("sft", chat(GOOD_REPLY), SFT)
    assert ok.passed and ok.reason is None
    assert set(result.failed_rules) <= set(RULES)


def test_score_is_in_unit_interval_and_ranks_soft_signals() -> None:
    clean = evaluate("sft", chat(GOOD_REPLY), SFT, lang=("en", 0.99)).score
    unpunctuated = evaluate("sft", chat("Restart the service"), SFT, lang=("en", 0.99)).score
    unsure = evaluate("sft", chat(GOOD_REPLY), SFT, lang=("und", 0.1)).score
    assert 0.0 < unpunctuated < clean <= 1.0
    assert 0.0 < unsure < clean
    assert clean == pytest.approx(1 - 0.2 * 0.01)


def test_disabled_rules_do_not_run() -> None:
    rules = QualityRules.for_regime("sft", {"truncated": {"enabled": False}, "empty_turn": {"enabled": False}})
    assert failed("sft", chat("Mix the flour with the"), rules) == []
    assert failed("sft", chat(""), rules) == ["length"]


def test_regime_defaults_and_validation() -> None:
    assert SFT.refusal.enabled and not PREF.refusal.enabled
    assert TEXT.length.min_chars == 50 and RLVR.length.min_chars == 8
    assert SFT.repetition.max_top_ngram_char_frac == {2: 0.20, 3: 0.18, 4: 0.16}
    assert SFT.repetition.max_dup_ngram_char_frac[5] == 0.15 and SFT.repetition.max_dup_ngram_char_frac[10] == 0.10
    assert QualityRules.for_regime("sft", {"length": {"max_chars": 10}}).length.min_chars == 1  # merged, not replaced
    with pytest.raises(ValidationError, match="min_chars"):
        QualityRules.for_regime("sft", {"length": {"min_chars": 10, "max_chars": 5}})
    with pytest.raises(ValidationError):
        QualityRules.for_regime("sft", {"lenght": {"max_chars": 10}})
    with pytest.raises(ValidationError, match="regular expression"):
        QualityRules.for_regime("sft", {"refusal": {"patterns": ["("]}})
    with pytest.raises(ValueError, match="unknown regime"):
        QualityRules.for_regime("chat")
    with pytest.raises(ValueError, match="unknown regime"):
        evaluate("chat", {}, SFT)


def test_the_last_word_is_the_regex_s_from_the_end():
    import random
    import re

    from ptdata.silver.quality.truncated import _last_word

    rng = random.Random(9)
    alphabet = "ab_9 .,\n\t-é東٣²½\u200d\ufe0f"  # ², ½: numeric, so alphanumeric, and \w as well
    for _ in range(20000):
        t = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        m = re.search(r"\w+$", t)
        assert _last_word(t) == (m.group() if m else ""), repr(t)
