# -*- coding: utf-8 -*-
"""What the small benches share: the load line, the JSON under bench/results/, matplotlib if installed."""
# License: MIT License

import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def save_results(name, rows, **extra):
    """Print the load average, write ``bench/results/<name>.json`` (rows, load, extra) and return the load."""
    load = os.getloadavg()
    print("\nload average: %.2f %.2f %.2f (2 cores shared)\n" % load)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump(dict(rows=rows, load=load, **extra), f, indent=1)
    return load


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    return plt
