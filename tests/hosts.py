"""This machine's addresses, for tests that must not use loopback (issue 19: nothing assumes
one host). A connection to the machine's own routable address comes from that address, not from
127.0.0.1, as a connection from another host would."""

from __future__ import annotations

import subprocess


def routable_address() -> str | None:
    """This machine's first global-scope IPv4 address (``ip -4 addr``), or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            return words[words.index("inet") + 1].split("/")[0]
    return None
