"""`python -m discharge`, and the `discharge` command (``run``)."""

from __future__ import annotations

import gc


def run() -> None:
    # Starting up creates some 200,000 objects (modules, classes, fonts, templates) that all
    # live until the program ends, and Python's cycle collector would look through them again
    # and again as they are made: about 4% of a `discharge generate`. It is off while the
    # program starts; the commands that keep running (batch, serve) turn it back on
    # (cli.py), and the short ones end before their garbage matters.
    gc.disable()
    from discharge.cli import main

    main()


if __name__ == "__main__":
    run()
