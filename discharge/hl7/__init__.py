"""HL7 v2 with the clinic's systems: scheduling messages in (``discharge listen``), the made
sheets filed back to the patient's record."""
