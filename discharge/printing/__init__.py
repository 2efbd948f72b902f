"""Printing the instructions at the desk: sent to the ward's printer, confirmed, recorded.

``jobs`` prints one PDF and waits for the print system to confirm it (``print_pdf``),
``cups`` speaks to CUPS, ``settings`` reads the clinic's ``[print]`` table. The audit records
of each sheet printed are the print channel's (``discharge/channels/print.py``).

Import from the module itself (``from discharge.printing.jobs import print_pdf``): this package
imports none of them, so that checking a settings file with a ``[print]`` section (which loads
``settings``) does not load the print system's code every command would then pay for.
"""
