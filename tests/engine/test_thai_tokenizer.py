from rasa.shared.nlu.training_data.message import Message

from components.thai_tokenizer import ThaiTokenizer


def tokens(text: str) -> list:
    tokenizer = ThaiTokenizer(ThaiTokenizer.get_default_config())
    return tokenizer.tokenize(Message(data={"text": text}), "text")


def test_thai_without_spaces_is_cut_into_words():
    words = [t.text for t in tokens("โดนขู่ว่าจะส่งรูปไปให้เพื่อน")]
    assert words[:2] == ["โดน", "ขู่"]
    assert "รูป" in words and "เพื่อน" in words


def test_offsets_point_at_the_words_in_mixed_text():
    text = "เค้าจะ post คลิป ของหนู!!"
    found = tokens(text)
    assert all(text[t.start : t.end] == t.text for t in found)
    assert "post" in [t.text for t in found]


def test_whitespace_and_zero_width_characters_are_never_tokens():
    found = tokens("ช่วย\u200bด้วย   help  me")
    assert all(t.text.strip() and "\u200b" not in t.text for t in found)
    assert [t.text for t in found][-2:] == ["help", "me"]


def test_a_message_without_words_still_has_one_token():
    assert len(tokens("🙏🙏")) == 1
