"""Review: a reader's session (boxes drawn, candidates generated, decisions; autosaved), and the export of
reviewed candidates to a synthetic set. No widgets here: the GUI drives these objects."""
