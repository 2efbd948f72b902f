"""Procedure guidance: the templates clinicians write (``templates/*.toml``), from file to
filled text. Each module has one job, each using only those listed after it:

- ``translations``: whether a translation is current with its original, and complete;
- ``loading``: finding a procedure's template file, reading and caching what it holds;
- ``parser``: a template's TOML checked field by field and built into a ``Procedure``;
- ``context``: what a template's placeholders see for one patient (the dated milestones);
- ``model``: the ``Procedure`` records, and which parts each variant prints;
- ``filling``: the one template filler, for procedure and email texts alike;
- ``sandbox``: the sandboxed, limited Jinja2 environment it renders in.
"""
