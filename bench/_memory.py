# -*- coding: utf-8 -*-
"""Process memory readings shared by the bench scripts (Linux ``/proc``)."""


def proc_status():
    """``{'VmHWM': bytes, 'VmRSS': bytes}`` of this process (empty if /proc is unavailable)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmHWM", "VmRSS")):
                    key, val = line.split(":")
                    out[key] = int(val.split()[0]) * 1024
    except OSError:
        pass
    return out


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
