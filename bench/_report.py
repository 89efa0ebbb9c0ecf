# -*- coding: utf-8 -*-
"""What the benches share: the load line, the JSON and the Markdown report under bench/results/, matplotlib.

Each bench script writes its own results page, ``bench/results/<name>.md``, with :func:`write_markdown`
(tables made by :func:`md_table`); the documentation's benchmark page includes those files as they are,
so the numbers live in one place: the bench's output.
"""
# License: MIT License

import json
import os
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# ends the generated part of a results page; text a person adds below it is kept by later runs
MANUAL = "<!-- notes below this line are kept when the bench rewrites this file -->"


def help_and_exit(doc):
    """For the scripts that read ``sys.argv`` by hand: ``-h``/``--help`` prints the module's docstring (its usage)
    and exits, instead of starting a run of many minutes."""
    if "-h" in sys.argv[1:] or "--help" in sys.argv[1:]:
        print(doc)
        sys.exit(0)


def save_results(name, rows, **extra):
    """Print the load average, write ``bench/results/<name>.json`` (rows, load, extra) and return the load."""
    load = os.getloadavg()
    print("\nload average: %.2f %.2f %.2f (2 cores shared)\n" % load)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump(dict(rows=rows, load=load, **extra), f, indent=1)
    return load


def load_results(name):
    """The dict of ``bench/results/<name>.json`` (for ``--render``: rewrite the report without rerunning)."""
    with open(os.path.join(RESULTS, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def _cell(x):
    if x is None:
        return ""
    if isinstance(x, float):
        return "%.4g" % x
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(header, rows, align=None):
    """A GitHub-flavoured Markdown pipe table, as a string.

    Parameters
    ----------
    header : list of str
        Column titles.
    rows : list of list
        One list of cells per row; a cell is a str (inserted as is, ``|`` escaped), a float
        (``%.4g``), an int, or None (empty).
    align : str, optional
        One letter per column, ``'l'``, ``'r'`` or ``'c'`` (default: all left).
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError("md_table: every row and align need one entry per column (%d)" % len(header))
    sep = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(sep[a] for a in align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(name, title, blocks, source=None, figures=()):
    """Write ``bench/results/<name>.md``, the bench's results page, and return its path.

    Parameters
    ----------
    name : str
        File name without extension (usually the script's name, e.g. ``"bench_graph"``).
    title : str
        The page's title (a ``#`` heading; the documentation nests it under its benchmark page).
    blocks : list of str
        Markdown blocks in order: paragraphs, ``### sub-headings``, tables from :func:`md_table`.
        Say what was measured and how (settings, machine, load average during the run) here, in the
        text next to the table: that is where the documentation reader finds it.
    source : str, optional
        How the numbers were produced (command line, date, load average); written as the first
        paragraph, "*Source:* ...".
    figures : sequence of (str, str)
        ``(file name in bench/results/, alt text)`` of plots shown below the tables.

    Notes
    -----
    Anything below the line :data:`MANUAL` in an existing file is kept (hand-written notes that
    the bench cannot produce).
    """
    path = os.path.join(RESULTS, name + ".md")
    kept = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if MANUAL in old:
            kept = old[old.index(MANUAL) + len(MANUAL) :].strip("\n")
    parts = ["# " + title]
    if source:
        parts.append("*Source:* " + source)
    parts += [b.strip("\n") for b in blocks]
    parts += ["![%s](%s)" % (alt, fname) for fname, alt in figures]
    if kept:
        parts += [MANUAL, kept]
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts) + "\n")
    print("wrote", os.path.relpath(path))
    return path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    return plt
