"""HL7 v2 with the clinic's systems: the scheduling feed in, the made sheet filed back
(``mdm.py`` builds the MDM^T02 message, ``filing.py`` sends it once over MLLP)."""
