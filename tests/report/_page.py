"""Reading a rendered report back: its tables by section, images, scripts and links."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """What a test needs of an HTML document: tables by section, images, scripts, links."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.section = ""
        self.tables: dict[str, list[list[str]]] = {}  # section id -> body rows (cell texts)
        self.images: list[str] = []
        self.scripts = 0
        self.links = 0
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self.section = attributes.get("id") or ""
        elif tag == "table":
            self.tables[self.section] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self.section].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, section: str) -> list[list[str]]:
        """The main rows of a section's table (not the rows listing rejected updates)."""
        return [row for row in self.tables[section] if row[0] != ""]
