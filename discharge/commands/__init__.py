"""One thin module per ``discharge`` command: parse options, call the library, report."""
