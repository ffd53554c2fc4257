"""The pages' texts are all in the catalogues, and the catalogues agree with each other.

One catalogue per language (stocksync/ui/static/i18n/<code>.json). These checks are mechanical:
the catalogues have the same keys, plural forms and placeholders; every key the pages use
exists and every key is used; no text node or text attribute of the HTML holds words; and no
string literal of the scripts reads like prose (a word followed by a space and another word,
or a capitalised word), apart from the few code strings listed in CODE_STRINGS.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stocksync.domain.model import Disposition, State

STATIC = Path(__file__).resolve().parents[2] / "stocksync" / "ui" / "static"
LANGUAGES = ("en", "de")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Attributes a person reads or hears; the pages set them through data-i18n-attr.
TEXT_ATTRIBUTES = frozenset({"title", "aria-label", "placeholder", "alt", "aria-description"})
# String literals of the scripts that look like prose to the check but are code.
CODE_STRINGS = frozenset(
    {
        "#stock tbody",
        "#return-lines tbody",
        "#inspect tbody",
        "#results-table tbody",
        "#return-lines input:not([disabled])",
        "button[type=submit]",
        "tbody tr",
        "Accept",
        "Authorization",
        "Content-Type",
        "Last-Event-ID",
        "Bearer",
        "Escape",
        "AbortError",
        "primary",
        "actions tight",
        "deadline overdue",
        "pickup state-",
    }
)


def catalogue(code: str) -> dict[str, object]:
    entries: dict[str, object] = json.loads((STATIC / "i18n" / f"{code}.json").read_text())
    return entries


def placeholders(value: object) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(str(text))}


def test_catalogues_have_the_same_keys_forms_and_placeholders() -> None:
    en, de = catalogue("en"), catalogue("de")
    assert sorted(en) == sorted(de)
    for key, value in en.items():
        other = de[key]
        assert type(value) is type(other), key
        if isinstance(value, dict):
            assert isinstance(other, dict)
            assert set(value) == set(other) == {"one", "other"}, key
        assert placeholders(value) == placeholders(other), key
        assert all(str(text).strip() for text in ([value] if isinstance(value, str) else [])), key


# -- the scripts' string literals --------------------------------------------------------------

REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}


def js_strings(source: str) -> list[str]:
    """The string literals of a script (a template literal's text parts joined by a space),
    skipping comments and regular expression literals."""
    out: list[str] = []
    i, n, last = 0, len(source), ""
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i)
            i = n if i < 0 else i
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        elif c in "'\"":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i + 1 : j])
            i, last = j + 1, "s"
        elif c == "`":
            parts, j, text = [], i + 1, ""
            while source[j] != "`":
                if source[j] == "\\":
                    text += source[j : j + 2]
                    j += 2
                elif source.startswith("${", j):
                    parts.append(text)
                    text, depth, k = "", 1, j + 2
                    while depth:
                        depth += {"{": 1, "}": -1}.get(source[k], 0)
                        k += 1
                    out.extend(js_strings(source[j + 2 : k - 1]))
                    j = k
                else:
                    text += source[j]
                    j += 1
            parts.append(text)
            out.append(" ".join(p.strip() for p in parts if p.strip()))
            i, last = j + 1, "s"
        elif c == "/" and last in REGEX_BEFORE:
            j, in_class = i + 1, False
            while in_class or source[j] != "/":
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            i, last = j + 1, "r"
        elif c.isspace():
            i += 1
        else:
            word = re.match(r"[A-Za-z_$][\w$]*|\d+|.", source[i:])
            assert word is not None
            token = word.group(0)
            last = "" if token in {"return", "typeof", "case", "of", "in"} else token[-1]
            last = last if not (token[0].isalnum() or token[0] in "_$") else "w"
            i += len(token)
    return out


def looks_like_prose(text: str) -> bool:
    """Words a person would read: two words with a space between, or a capitalised word."""
    return bool(re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", text) or re.match(r"[A-Z][a-z]", text))


def test_the_prose_check_tells_prose_from_code() -> None:
    found = js_strings(
        'x = t("key.a"); y = "Hold placed"; z = `${a} items left`; /* "In a comment" */\n'
        'w = s.replace(/"quoted" in a regex/g, "-"); // "a comment"\n v = "#xy tbody"; u = "Live"'
    )
    assert found == ["key.a", "Hold placed", "items left", "-", "#xy tbody", "Live"]
    assert [looks_like_prose(s) for s in found] == [False, True, True, False, True, True]


@pytest.mark.parametrize("script", sorted(p.name for p in STATIC.glob("*.js")))
def test_scripts_have_no_user_visible_literals(script: str) -> None:
    strings = js_strings((STATIC / script).read_text())
    prose = [s for s in strings if looks_like_prose(s) and s not in CODE_STRINGS]
    assert prose == [], f"{script}: put these in the catalogues and use t(key)"


# -- the pages' HTML ---------------------------------------------------------------------------


class PageTexts(HTMLParser):
    """Text nodes and text attributes of a page (outside script and style), and the keys it
    names in data-i18n and data-i18n-attr."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.keys: set[str] = set()
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        for name, value in attrs:
            if name == "data-i18n" and value:
                self.keys.add(value)
            elif name == "data-i18n-attr" and value:
                self.keys |= {pair.split(":")[1].strip() for pair in value.split(";")}
            elif name in TEXT_ATTRIBUTES and value and re.search(r"[A-Za-z]", value):
                self.texts.append(f'{tag} {name}="{value}"')

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip and re.search(r"[A-Za-z]", data):
            self.texts.append(data.strip())


def page_texts(name: str) -> PageTexts:
    parser = PageTexts()
    parser.feed((STATIC / name).read_text())
    return parser


@pytest.mark.parametrize("page", ["store.html", "chat.html"])
def test_pages_have_no_literal_text(page: str) -> None:
    parsed = page_texts(page)
    assert parsed.texts == [], f"{page}: mark these with data-i18n / data-i18n-attr"
    assert parsed.keys, "the parser no longer finds the pages' keys"


def test_the_html_check_finds_literal_text() -> None:
    parser = PageTexts()
    parser.feed('<p>Hello there</p><b title="A tip">5</b><i data-i18n="k"></i><script>x</script>')
    assert parser.texts == ["Hello there", 'b title="A tip"']
    assert parser.keys == {"k"}


# -- keys used and keys defined ----------------------------------------------------------------

# Keys the scripts build from a value: each family must cover the values it is built from.
FAMILIES = {
    "state.": {s.value for s in State},
    "chat.state.": {s.value for s in State},
    "disposition.": {d.value for d in Disposition},
    "placed.heading_": {"fulfilled", "released", "expired"},
    "inspect.done_": {"restock", "damaged"},
    "inspect.": {"restock", "damaged"},
}
# Families whose members are optional (an error code without its own text shows the server's).
OPTIONAL_FAMILIES = ("error.",)


def used_keys() -> set[str]:
    keys: set[str] = set()
    for script in STATIC.glob("*.js"):
        keys |= {
            s
            for s in js_strings(script.read_text())
            if re.fullmatch(r"[a-z_]+(\.[a-z_]*[a-z])+", s) and not s.startswith("stocksync.")
        }
    for page in ("store.html", "chat.html"):
        keys |= page_texts(page).keys
    return keys


def test_every_key_used_exists_and_every_key_is_used() -> None:
    defined = set(catalogue("en"))
    used = used_keys()
    family_keys = {prefix + value for prefix, values in FAMILIES.items() for value in values}
    assert used - defined == set(), "keys the pages use that the catalogues lack"
    assert family_keys - defined == set(), "keys built from values that the catalogues lack"
    unused = {key for key in defined - used - family_keys if not key.startswith(OPTIONAL_FAMILIES)}
    assert unused == set(), "keys no page uses"
