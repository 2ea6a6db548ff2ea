import pytest

from components.signals import age_band, language, role, routes, signals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("สวัสดีค่ะ", "th"),
        ("โดน blackmail อะ", "th"),
        ("hello", "en"),
        ("english please", "en"),
        ("ขอคุยภาษาอังกฤษได้มั้ย", "en"),
        ("can we talk in thai", "th"),
        ("😭😭", None),
    ],
)
def test_language(text, expected):
    assert language(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my daughter is being threatened online", "caregiver"),
        ("ลูกชายโดนคนในเกมขอรูป", "caregiver"),
        ("my best friend's photos got leaked", "friend"),
        ("เพื่อนหนูโดนแฉรูป", "friend"),
        ("he sent my pics to all my friends", None),
        ("เขาขู่จะส่งรูปไปให้เพื่อนทั้งห้อง", None),
        ("someone is threatening me", None),
    ],
)
def test_role(text, expected):
    assert role(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("อายุ 12 ค่ะ", "under_13"),
        ("14", "13_15"),
        ("im 16", "16_17"),
        ("ม.2", "13_15"),
        ("ป.6", "under_13"),
        ("I'm 35", "adult"),
        ("grade 8", "13_15"),
        ("ทำยังไงดี", None),
    ],
)
def test_age_band(text, expected):
    assert age_band(text) == expected


def test_routes_named():
    assert routes("สายเด็ก 1387 คืออะไร") == ["saidek_1387"]
    assert set(routes("should i go to the police or ticac")) == {"ticac", "police"}


def test_caregiver_age_is_not_taken_as_the_writers_age():
    assert "age_band" not in signals("my son is 12 and someone asked him for photos")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a sibling, cousin or classmate at risk: the writer is family or a friend
        ("my little sister is being blackmailed by some guy", "friend"),
        ("my cousin got her pics leaked", "friend"),
        ("my brother's video is going around his school", "friend"),
        ("a girl in my class had her nudes leaked", "friend"),
        ("someone in my class is being groomed i think", "friend"),
        ("น้องสาวหนูโดนผู้ชายในเกมขอรูป", "friend"),
        ("ลูกพี่ลูกน้องโดนแบล็คเมล์", "friend"),
        ("เพื่อนร่วมห้องโดนแฉคลิป", "friend"),
        # the sibling is the one who hurts: the writer is the child
        ("my older brother touches me at night", None),
        ("my stepbrother posted my pics", None),
        ("พี่ชายจับตัวหนู", None),
        # a parent
        ("my son is being threatened", "caregiver"),
        ("my 15-year-old got a message from a stranger", "caregiver"),
        ("my 12yo is chatting with an adult", "caregiver"),
        ("im her mom", "caregiver"),
        ("my 15 year old brother got blackmailed", "friend"),
        ("คุยกับลูกยังไงดี", "caregiver"),
        ("มีคนส่งข้อความหาลูกทุกคืน", "caregiver"),
        ("ลูก 14 ขวบ", "caregiver"),
        ("ลูกค้าโกงเงิน", None),
    ],
)
def test_role_of_family_and_parents(text, expected):
    assert role(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chuay duay", "th"),
        ("mee kon khu ja ploi clip", "th"),
        ("sawasdee krub", "th"),
        ("nong tuk blackmail ka", "th"),
        ("i dont know what to do", "en"),
        ("ha ha ok", "en"),
        ("he is coming to my house tonight", "en"),
    ],
)
def test_thai_in_latin_letters_is_thai(text, expected):
    assert language(text) == expected
