"""Creates the LINE rich menu: talk to a person, where to report, safety tips, ภาษา/Language,
and delete my data.

The menu is the child's way in without typing. Its image is drawn here, in Thai and English, from
the `ui_menu_*` sentences in locales/ (so the words are reviewed like every other sentence), with a
Thai font from the system (Debian's fonts-thai-tlwg). Each area sends the same postback payload as
the web chat's buttons; ภาษา/Language switches to the other language (bot/channels/line.py);
delete my data asks first, like /forget everywhere (bot/forget.py).

    make line-richmenu                 # render, create through the API, make it the default
    .venv/gateway/bin/python -m scripts.line_richmenu --image-only  # only var/line_richmenu.png

Uses LINE_CHANNEL_ACCESS_TOKEN, LINE_API_BASE_URL and LINE_DATA_API_BASE_URL like the gateway.
Earlier menus of the same name are deleted after the new one is the default, so there is no gap.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
    PostbackAction,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
)
from PIL import Image, ImageDraw, ImageFont

from bot import forget
from bot.channels.line import LANGUAGE_TOGGLE, MAX_DISPLAY_TEXT
from bot.config import ROOT, Settings
from bot.locales import Locales
from bot.text_split import fit_utf16

MENU_NAME = "main-actions"
WIDTH, HEIGHT = 2500, 1686  # LINE's large rich menu size
LANGUAGES = ("th", "en")
MAX_CHAT_BAR = 14
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/tlwg"),
    Path("/usr/share/fonts/opentype/tlwg"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto"),
)
FONT_NAMES = ("Loma-Bold", "Garuda-Bold", "NotoSansThai-Bold", "Kinnari-Bold", "Loma", "Garuda")


@dataclass(frozen=True)
class Tile:
    """One tappable area: its sentence in locales/, its payload, and its colour."""

    label: str
    payload: str
    colour: str


# Row by row, left to right. Colours keep white text above 4.5:1 contrast.
TILES = (
    Tile("ui_menu_person", "/talk_to_human", "#1d6a86"),
    Tile("ui_menu_report", "/report_help", "#2e6b4f"),
    Tile("ui_menu_safety", "/online_safety", "#6a4a94"),
    Tile("ui_menu_language", LANGUAGE_TOGGLE, "#9a4a24"),
    Tile("ui_menu_forget", forget.ASK, "#545b66"),  # quiet grey: there, but not inviting
)
# Tiles per row, top to bottom: the two ways to get help large on top, the rest below.
ROWS = (2, 3)
CHAT_BAR = "ui_menu_chat_bar"


class MenuError(Exception):
    """Something the menu needs is missing (a sentence, a Thai font, the access token)."""


def labels(locales: Locales) -> dict[str, dict[str, str]]:
    """name → language → sentence, for every tile and the chat bar; all must exist."""
    out: dict[str, dict[str, str]] = {}
    for name in [t.label for t in TILES] + [CHAT_BAR]:
        for language in LANGUAGES:
            rendered = locales.render(name, language, {"channel": "line"})
            if rendered is None or not rendered.text.strip():
                raise MenuError(f"locales/{language}.yml has no {name}")
            out.setdefault(name, {})[language] = rendered.text.strip()
    return out


def _draws_thai(path: Path) -> bool:
    """A font without Thai glyphs draws every Thai letter as the same empty box."""
    font = ImageFont.truetype(str(path), 40)
    thai = font.getmask("กขค").getbbox()
    missing = font.getmask("\U0010fffd\U0010fffd\U0010fffd").getbbox()
    return thai is not None and thai != missing


def thai_font() -> Path:
    wanted = os.environ.get("LINE_MENU_FONT")
    candidates = [Path(wanted)] if wanted else []
    candidates += [d / f"{n}.{x}" for n in FONT_NAMES for d in FONT_DIRS for x in ("ttf", "otf")]
    for path in candidates:
        if path.is_file() and _draws_thai(path):
            return path
    raise MenuError("no Thai font found: apt-get install fonts-thai-tlwg (or set LINE_MENU_FONT)")


def _sized(font: Path, text: str, size: int, width: int) -> ImageFont.FreeTypeFont:
    """The largest font ≤ size at which `text` fits in `width` pixels."""
    while True:
        face = ImageFont.truetype(str(font), size)
        if face.getlength(text) <= width or size <= 24:
            return face
        size -= 4


def draw(texts: dict[str, dict[str, str]], font: Path) -> bytes:
    """The menu image as PNG: the tiles in their ROWS, Thai large above English."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "#ffffff")
    canvas = ImageDraw.Draw(image)
    gap = 10
    for tile, (x, y, w, h) in zip(TILES, _bounds(), strict=True):
        canvas.rounded_rectangle(
            (x + gap, y + gap, x + w - gap, y + h - gap), radius=48, fill=tile.colour
        )
        thai = _sized(font, texts[tile.label]["th"], 150, w - 160)
        english = _sized(font, texts[tile.label]["en"], 96, w - 160)
        middle = y + h // 2
        canvas.text((x + w // 2, middle + 10), texts[tile.label]["th"], "#ffffff", thai, "md")
        canvas.text((x + w // 2, middle + 80), texts[tile.label]["en"], "#ffffff", english, "ma")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _spans(total: int, parts: int) -> list[tuple[int, int]]:
    """(start, length) of `parts` equal spans of `total`; the last takes the pixels left over,
    so the spans cover it exactly."""
    size = total // parts
    return [(i * size, total - i * size if i == parts - 1 else size) for i in range(parts)]


def _bounds() -> list[tuple[int, int, int, int]]:
    """(x, y, width, height) of each tile, in TILES order."""
    return [
        (x, y, width, height)
        for (y, height), count in zip(_spans(HEIGHT, len(ROWS)), ROWS, strict=True)
        for x, width in _spans(WIDTH, count)
    ]


def menu_request(texts: dict[str, dict[str, str]]) -> RichMenuRequest:
    areas = []
    for tile, (x, y, w, h) in zip(TILES, _bounds(), strict=True):
        shown = " · ".join(texts[tile.label][lang] for lang in LANGUAGES)
        action = PostbackAction(
            label=fit_utf16(texts[tile.label]["th"], 20),  # read aloud by screen readers
            data=tile.payload,
            display_text=fit_utf16(shown, MAX_DISPLAY_TEXT),
        )
        areas.append(
            RichMenuArea(bounds=RichMenuBounds(x=x, y=y, width=w, height=h), action=action)
        )
    return RichMenuRequest(
        size=RichMenuSize(width=WIDTH, height=HEIGHT),
        selected=True,
        name=MENU_NAME,
        chat_bar_text=fit_utf16(texts[CHAT_BAR]["th"], MAX_CHAT_BAR),
        areas=areas,
    )


async def install(settings: Settings, request: RichMenuRequest, png: bytes) -> str:
    """Creates the menu, uploads its image to the data API, makes it everyone's default, then
    deletes older menus of the same name. Returns the new menu's id."""
    if not settings.line_channel_access_token:
        raise MenuError("LINE_CHANNEL_ACCESS_TOKEN is not set")
    token = settings.line_channel_access_token
    api_config = Configuration(host=settings.line_api_base_url, access_token=token)
    data_config = Configuration(host=settings.line_data_api_base_url, access_token=token)
    async with AsyncApiClient(api_config) as client, AsyncApiClient(data_config) as data:
        api, blob = AsyncMessagingApi(client), AsyncMessagingApiBlob(data)
        menus = (await api.get_rich_menu_list()).richmenus
        older = [m.rich_menu_id for m in menus if m.name == MENU_NAME]
        menu_id = (await api.create_rich_menu(request)).rich_menu_id
        await blob.set_rich_menu_image(menu_id, png, _headers={"Content-Type": "image/png"})
        await api.set_default_rich_menu(menu_id)
        for old in older:
            await api.delete_rich_menu(old)
    return menu_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=ROOT / "var" / "line_richmenu.png")
    parser.add_argument("--image-only", action="store_true", help="draw the image; no API call")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        texts = labels(Locales(settings.locales_dir))
        png = draw(texts, thai_font())
        args.image.parent.mkdir(parents=True, exist_ok=True)
        args.image.write_bytes(png)
        print(f"menu image: {args.image}")
        if not args.image_only:
            menu_id = asyncio.run(install(settings, menu_request(texts), png))
            print(f"rich menu {menu_id} created and set as the default")
    except MenuError as problem:
        print(f"line-richmenu: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
