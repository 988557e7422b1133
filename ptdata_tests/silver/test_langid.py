"""Language identification: a model from the py3langid wheel, short chat text, code, offline."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import py3langid
import pytest

from ptdata.silver import langid
from ptdata.silver.langid import detect_lang, detect_langs, detect_record_lang, record_text

CHAT = {
    "en": ["How do I reset my password?", "Sure, here is a summary of the article you sent."],
    "de": ["Wie setze ich mein Passwort zurück?", "Hier ist eine Zusammenfassung des Artikels."],
    "fr": ["Comment réinitialiser mon mot de passe ?", "Voici un résumé de l'article que tu as envoyé."],
    "es": ["¿Cómo restablezco mi contraseña?", "Aquí tienes un resumen del artículo que enviaste."],
    "it": ["Come posso reimpostare la mia password?", "Ecco un riassunto dell'articolo che hai inviato."],
    "pt": ["Como faço para redefinir minha senha?", "Aqui está um resumo do artigo que você enviou."],
    "nl": ["Hoe kan ik mijn wachtwoord opnieuw instellen?", "Hier is een samenvatting van het artikel."],
    "zh": ["我怎么重置密码？", "这是你发来的文章的摘要。"],
    "ja": ["パスワードをリセットするにはどうすればいいですか？", "送っていただいた記事の要約です。"],
    "ru": ["Как сбросить мой пароль?", "Вот краткое содержание статьи, которую ты прислал."],
    "ar": ["كيف أعيد تعيين كلمة المرور الخاصة بي؟", "إليك ملخص المقال الذي أرسلته."],
}
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; i++) {\n  sum += a[i];\n}",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
    "import numpy as np\nx = np.zeros((3, 3))\nprint(x.shape)",
    "const f = (x) => x.map(y => y * 2).filter(Boolean);",
    '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }',
    '{"name": "ptdata", "version": 1, "tags": ["a", "b"]}',
    "```python\nprint('hello world')\n```",
]


@pytest.mark.parametrize(("expected", "text"), [(lang, t) for lang, texts in CHAT.items() for t in texts])
def test_short_chat_text_in_eleven_languages(expected: str, text: str) -> None:
    code, p = detect_lang(text)
    assert code == expected
    assert langid.MIN_CONFIDENCE <= p <= 1.0


@pytest.mark.parametrize("snippet", CODE)
def test_code_is_undetermined(snippet: str) -> None:
    code, p = detect_lang(snippet)
    assert code == "und"
    assert 0.0 <= p < langid.MIN_CONFIDENCE


@pytest.mark.parametrize("text", ["", "   ", "ok", "42", "!!!", "😀😀😀", "Yes."])
def test_too_short_or_contentless_text_is_undetermined(text: str) -> None:
    assert detect_lang(text)[0] == "und"


def test_prose_around_code_is_judged_by_the_prose() -> None:
    reply = (
        "Voici la fonction corrigée, elle double maintenant l'entrée :\n"
        "```python\ndef double(values):\n    return [v * 2 for v in values]\n```\n"
        "Tu peux l'essayer avec `double([1, 2])` sur https://example.com/playground."
    )
    assert detect_lang(reply)[0] == "fr"
    assert "def double" not in langid.prose(reply)
    assert "example.com" not in langid.prose(reply)


def test_an_unclosed_fence_hides_the_rest_of_the_text() -> None:
    assert langid.prose("Hier ist der Code:\n```\nx = 1\ny = 2").strip() == "Hier ist der Code:"


def test_a_lower_threshold_labels_more_text() -> None:
    assert detect_lang("Ja, genau.")[0] == "und"
    assert detect_lang("Ja, genau.", min_confidence=0.05)[0] == "de"


def test_batch_matches_single_calls() -> None:
    texts = [CHAT["de"][0], CODE[0], "", CHAT["ja"][1]]
    assert detect_langs(texts) == [detect_lang(t) for t in texts]


def test_record_text_uses_user_and_assistant_turns() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Wie spät ist es?"},
        {"role": "tool", "content": '{"time": "10:00"}'},
        {"role": "assistant", "content": "Es ist zehn Uhr."},
    ]
    assert record_text("sft", {"messages": messages}) == "Wie spät ist es?\nEs ist zehn Uhr."
    pref = {"prompt": messages[1:2], "chosen": messages[3:], "rejected": [{"role": "assistant", "content": "No."}]}
    assert record_text("preference", pref) == "Wie spät ist es?\nEs ist zehn Uhr."
    assert record_text("rlvr", {"prompt": messages[1:2], "answer": "10"}) == "Wie spät ist es?"
    assert record_text("text", {"text": "Ein Text."}) == "Ein Text."
    with pytest.raises(ValueError, match="unknown regime"):
        record_text("chat", {})


def test_detect_record_lang() -> None:
    record = {
        "messages": [
            {"role": "user", "content": "¿Puedes explicarme cómo funciona la fotosíntesis?"},
            {"role": "assistant", "content": "Claro: las plantas convierten la luz del sol en energía química."},
        ]
    }
    assert detect_record_lang("sft", record)[0] == "es"


def test_the_model_ships_in_the_wheel_and_loads_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Path(py3langid.__file__).parent / langid.MODEL_FILE).is_file()

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("language identification tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    langid._identifier.cache_clear()
    try:
        assert detect_lang(CHAT["nl"][0])[0] == "nl"
    finally:
        langid._identifier.cache_clear()


def test_only_iso_639_1_codes_come_out() -> None:
    labels = langid._identifier().labels
    assert all(len(code) == 2 for code in labels if code != "zxx")
    assert {"en", "de", "fr", "es", "it", "pt", "nl", "zh", "ja", "ru", "ar"} <= set(labels)


def test_the_model_loads_once_when_threads_ask_for_it_together() -> None:
    # a worker loads it in a thread while its first tasks run (ptdata.core.executor)
    langid._load_scorer.cache_clear()
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: langid._scorer(), range(4)))
    assert all(scorer is loaded[0] for scorer in loaded)
