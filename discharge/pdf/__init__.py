"""The PDF wing: the only part of discharge that imports reportlab (with ``discharge.speedups``,
which holds every trick that reaches into reportlab's private names).

- ``render.py``: ``render_pdf(document) -> bytes``, the layout of a Document and nothing else;
- ``flowables.py``: the custom flowables it is made of (reused paragraphs, a heading kept with
  its table, the QR code, the tick box);
- ``furniture.py``: what every page carries (the footer with the patient's name and IDs, "Page
  X of Y", a draft's warning, the "continued" heading of notes that run on);
- ``tagging.py``: the PDF/UA structure tree; ``fonts.py``: the bundled fonts and safe markup;
  ``styles.py``: every size, colour and spacing; ``qr.py``: QR codes as runs of dark modules
  (reportlab's encoder; the web page's SVG uses them too); ``lazy_imports.py``: reportlab
  imported without paying for what a document rarely uses.

Nothing is imported here, so ``discharge.pdf.qr`` (the web page's) does not load the rest.
"""
