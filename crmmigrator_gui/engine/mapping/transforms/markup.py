"""HTML and RTF notes to plain text, with their line breaks kept.

Small strippers rather than dependencies: notes in exports use a handful of tags and control words.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _HtmlText(HTMLParser):
    """HTML → text: block ends and <br> become line breaks; whitespace between tags collapses."""

    BLOCKS = frozenset(
        "p div section article header footer blockquote ul ol table h1 h2 h3 h4 h5 h6 pre address tr dl dt dd hr "
        "form fieldset figure main nav aside li".split()
    )
    SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def _break(self) -> None:
        if not self._at_line_start():
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("td", "th"):
            if not self._at_line_start():
                self.out.append("\t")
        elif tag in self.BLOCKS:
            self._break()
            if tag == "li":
                self.out.append("- ")
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in self.BLOCKS or tag in self.SKIP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.pre -= tag == "pre" and self.pre > 0
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            self.out.append(data)
            return
        if not data.strip():  # whitespace between tags: one collapsible space
            if not self._at_line_start() and not self.out[-1].endswith((" ", "\t")):
                self.out.append(" ")
            return
        # Line breaks inside text are kept: in exports they come from a text box, not from pretty-printing.
        text = re.sub(r"[^\S\n]+", " ", data.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " "))
        if self._at_line_start():
            text = text.lstrip(" ")
        self.out.append(text)


_HAS_MARKUP = re.compile(r"<[a-zA-Z!/][^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+\d*);")


def _tidy_lines(text: str) -> str:
    lines = [re.sub(r"[ ]{2,}", " ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(text: str) -> str:
    """HTML to plain text with line breaks kept (<p>, <br>, <li>, <div>); plain text passes unchanged."""
    if not _HAS_MARKUP.search(text):
        return text.strip()
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return _tidy_lines("".join(parser.out))


_RTF_TOKEN = re.compile(r"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|[\r\n]+|([^\\{}\r\n]+)")
_RTF_SKIP = frozenset(
    "fonttbl colortbl stylesheet info pict object header footer headerl headerr headerf footerl footerr footerf "
    "listtable listoverridetable rsidtbl generator xmlnstbl themedata colorschememapping latentstyles datastore "
    "mmathPr filetbl revtbl operator author title fldinst".split()
)
_RTF_CHARS = {
    "par": "\n",
    "line": "\n",
    "sect": "\n",
    "page": "\n",
    "row": "\n",
    "tab": "\t",
    "cell": "\t",
    "emdash": "—",
    "endash": "–",
    "bullet": "•",
    "lquote": "‘",
    "rquote": "’",
    "ldblquote": "“",
    "rdblquote": "”",
    "emspace": " ",
    "enspace": " ",
    "qmspace": " ",
}
_RTF_SYMBOLS = {"\\": "\\", "{": "{", "}": "}", "~": " ", "_": "-", "-": "", "\n": "\n", "\r": "\n"}


def rtf_to_text(text: str) -> str:
    """RTF to plain text: groups, destinations and control words removed; \\par and \\line as line breaks.

    A small stripper rather than a dependency: notes in exports use a handful of control words. Handles
    ``\\'hh`` in the document's code page, ``\\uN`` with its ``\\ucN`` fallback characters, and ignorable
    ``{\\* …}`` destinations. Text that does not start with ``{\\rtf`` passes unchanged.
    """
    if not text.lstrip().startswith("{\\rtf"):
        return text.strip()
    codepage = "cp1252"
    match = re.search(r"\\ansicpg(\d+)", text)
    if match:
        codepage = f"cp{match.group(1)}"
    stack: list[tuple[bool, int]] = []
    skip, uc, pending_fallback = False, 1, 0
    out: list[str] = []
    for m in _RTF_TOKEN.finditer(text):
        word, arg, hexcode, symbol, brace, plain = m.groups()
        if brace == "{":
            stack.append((skip, uc))
            continue
        if brace == "}":
            skip, uc = stack.pop() if stack else (False, 1)
            continue
        if pending_fallback and (hexcode or plain or symbol):
            if plain:  # the fallback characters of a \uN are plain text (or \'hh escapes)
                dropped = min(pending_fallback, len(plain))
                pending_fallback -= dropped
                plain = plain[dropped:]
                if not plain:
                    continue
            else:
                pending_fallback -= 1
                continue
        if word is not None:
            if word in _RTF_SKIP:
                skip = True
            elif word == "uc" and arg is not None:
                uc = int(arg)
            elif word == "u" and arg is not None:
                if not skip:
                    out.append(chr(int(arg) % 65536))
                pending_fallback = uc
            elif word == "bin" and arg is not None:
                skip = True  # binary data: the rest of the group is not text
            elif not skip and word in _RTF_CHARS:
                out.append(_RTF_CHARS[word])
        elif symbol is not None:
            if symbol == "*":
                skip = True
            elif not skip and symbol in _RTF_SYMBOLS:
                out.append(_RTF_SYMBOLS[symbol])
        elif hexcode is not None:
            if not skip:
                out.append(bytes([int(hexcode, 16)]).decode(codepage, errors="replace"))
        elif plain is not None and not skip:
            out.append(plain)
    return _tidy_lines("".join(out))
