"""Writes data/kjv.txt: the first books of the King James Bible (1611, public
domain), as plain text under 2 MB, for the character-level transformer.

    apt-get install bible-kjv          # Debian's bible-kjv + bible-kjv-text
    python3 scripts/make_kjv.py

Each chapter becomes its title line ("Genesis 1"), then one line per verse
without its number, then a blank line. Books are taken in canonical order
while the text stays under 1,990,000 bytes.
"""
import re
import subprocess

LIMIT = 1_990_000
raw = subprocess.run(
    ["bible", "-l0", "Genesis1:1-Revelation22:21"], check=True, capture_output=True, text=True
).stdout
chapters = []  # (book, text)
book, lines = None, []
for line in raw.splitlines():
    title = re.fullmatch(r"(\S.*?) (\d+)", line)
    verse = re.fullmatch(r"\s+\d+ (.*)", line)
    if title:
        if book is not None:
            chapters.append((book, "\n".join(lines) + "\n\n"))
        book, lines = title.group(1), [line]
    elif verse:
        lines.append(verse.group(1).strip())
chapters.append((book, "\n".join(lines) + "\n\n"))

by_book = {}  # insertion order is canonical order
for b, text in chapters:
    by_book[b] = by_book.get(b, "") + text
books = list(by_book)
out, size = [], 0
for b in books:
    if size + len(by_book[b].encode()) > LIMIT:
        break
    out.append(by_book[b])
    size += len(by_book[b].encode())
open("data/kjv.txt", "w").write("".join(out))
print(f"data/kjv.txt: {size} bytes, books {books[0]} to {books[len(out) - 1]}")
