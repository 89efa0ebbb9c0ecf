# -*- coding: utf-8 -*-
"""Render one ``## Section`` of the README (Markdown) as reStructuredText.

The benchmark tables live in one place, the README; the documentation's
benchmark page includes them through this converter, which knows the small
Markdown subset the README uses: paragraphs, ``**bold**``, ```code```,
``[text](url)``, ``![alt](path)`` images, pipe tables and ``###`` headings.
"""
# License: MIT License

import re


def _inline(text):
    parts = re.split(r"(`[^`]+`)", text)  # code spans first: nothing inside them is converted
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append("`" + part + "`")
        else:
            part = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r"\2", part)
            out.append(re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"`\1 <\2>`__", part))
    return "".join(out)


def _table(rows):
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    header, body = cells[0], [r for r in cells[2:]]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + body:
        for j, c in enumerate(row):
            out.append(("   * - " if j == 0 else "     - ") + (_inline(c) or r"\ "))
    return out + [""]


def section_to_rst(markdown, title, image_prefix="", underline="-"):
    """The body of the README section ``## title`` as reST (its own title dropped)."""
    lines = markdown.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "## " + title)
    except StopIteration:
        raise ValueError("README has no section '## %s'" % title) from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = lines[start + 1:end]
    out, i = [], 0
    while i < len(body):
        ln = body[i]
        if ln.startswith("|"):
            j = i
            while j < len(body) and body[j].startswith("|"):
                j += 1
            out += _table(body[i:j])
            i = j
            continue
        m = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$", ln)
        if m:
            out += [".. image:: %s%s" % (image_prefix, m.group(2)), "   :alt: %s" % m.group(1), ""]
        elif ln.startswith("### "):
            head = _inline(ln[4:].strip())
            out += [head, underline * len(head), ""]
        elif ln.startswith("```"):
            raise ValueError("code blocks are not supported in README section '%s'" % title)
        else:
            out.append(_inline(ln))
        i += 1
    return "\n".join(out) + "\n"
